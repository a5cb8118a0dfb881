"""Floodgate's Pulumi program: read settings, build the Portal, export its outputs."""

import pulumi

from components.portal import Portal
from planning.settings import REGION_KEY, SETTINGS_KEY, parse_stack_config

settings = parse_stack_config(
    {
        REGION_KEY: pulumi.Config("aws").get("region"),
        SETTINGS_KEY: pulumi.Config().get_object("settings"),
    }
)
portal = Portal(f"{pulumi.get_project()}-{pulumi.get_stack()}", settings)
for key, value in portal.outputs.items():
    pulumi.export(key, value)
