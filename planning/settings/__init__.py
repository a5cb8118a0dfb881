"""The one settings model for a Floodgate stack, one module per section.

A stack file (`stacks/Pulumi.<stack>.yaml`) carries `aws:region` and one structured key,
`floodgate:settings`. `__main__` reads both through `pulumi.Config`; scripts read the YAML file
directly. Both hand the same mapping to `parse_stack_config`, so every default lives here once.

Every validation error names the key (dotted path), the bad value and what is allowed, and is
raised before any resource is declared. Every field is documented by its docstring;
docs/settings.md is generated from them (`make docs`).
"""

from planning.settings.admission import ADMIN_CONCURRENCY, INLET_CONCURRENCY, AdmissionSettings
from planning.settings.alarms import AlarmSettings
from planning.settings.base import (
    PROJECT,
    REGION_KEY,
    SETTINGS_KEY,
    STACKS_DIR,
    SettingsError,
    architecture,
)
from planning.settings.capacity import CapacitySettings
from planning.settings.edge import EdgeSettings, WafSettings
from planning.settings.fleet import FleetSettings, ScalingSettings, WarmPoolSettings
from planning.settings.inbox import InboxSettings
from planning.settings.load_balancer import LoadBalancerSettings
from planning.settings.network import NetworkSettings
from planning.settings.prescale import RUNNER_CONCURRENCY, PrescaleSettings
from planning.settings.rehearsal import PriceSettings, RehearsalSettings
from planning.settings.stack import (
    Settings,
    derived_people_per_instance,
    load_stack_settings,
    parse_stack_config,
)

__all__ = [
    "ADMIN_CONCURRENCY",
    "INLET_CONCURRENCY",
    "PROJECT",
    "REGION_KEY",
    "RUNNER_CONCURRENCY",
    "SETTINGS_KEY",
    "STACKS_DIR",
    "AdmissionSettings",
    "AlarmSettings",
    "CapacitySettings",
    "EdgeSettings",
    "FleetSettings",
    "InboxSettings",
    "LoadBalancerSettings",
    "NetworkSettings",
    "PrescaleSettings",
    "PriceSettings",
    "RehearsalSettings",
    "ScalingSettings",
    "Settings",
    "SettingsError",
    "WafSettings",
    "WarmPoolSettings",
    "architecture",
    "derived_people_per_instance",
    "load_stack_settings",
    "parse_stack_config",
]
