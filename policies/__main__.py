"""Entry point the Pulumi engine runs: `pulumi preview --policy-pack policies`."""

import sys
from pathlib import Path

# The engine starts the pack in policies/; the rules import planning/ from the repository.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pulumi_policy import EnforcementLevel, PolicyPack

from policies import PACK_NAME, RULES

PolicyPack(name=PACK_NAME, enforcement_level=EnforcementLevel.MANDATORY, policies=list(RULES))
