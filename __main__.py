"""Floodgate's Pulumi program: read settings and the event calendar, build the Portal, export."""

import os

import pulumi

from components.portal import Portal
from planning import clock
from planning.calendar import load_calendar
from planning.event_plan import plan_events
from planning.settings import REGION_KEY, SETTINGS_KEY, parse_stack_config

settings = parse_stack_config(
    {
        REGION_KEY: pulumi.Config("aws").get("region"),
        SETTINGS_KEY: pulumi.Config().get_object("settings"),
    }
)
now = clock.now()
plans = plan_events(load_calendar(), settings, pulumi.get_stack(), now)
# The offline plan (scripts/offline_cloud.py) uploads nothing: the awscrt layer need not exist.
portal = Portal(
    f"{pulumi.get_project()}-{pulumi.get_stack()}",
    settings,
    plans,
    now,
    require_layer=os.environ.get("FLOODGATE_OFFLINE") != "1",
)
for key, value in portal.outputs.items():
    pulumi.export(key, value)
