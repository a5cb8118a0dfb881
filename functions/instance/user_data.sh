#!/bin/bash
# Default web-instance bootstrap for Amazon Linux 2023: serves a placeholder portal and the ALB
# health check until a platform team sets fleet.user_data to its own application.
# The app_port and health_check_path placeholders are filled in by components/web_fleet.py.
set -euo pipefail
install -d -m 0755 /srv/portal
echo ok > "/srv/portal${health_check_path}"
cat > /srv/portal/index.html <<'HTML'
<!doctype html><html lang="en"><meta charset="utf-8"><title>Portal</title>
<p>Floodgate placeholder portal. / Portail temporaire Floodgate.</p></html>
HTML
cat > /etc/systemd/system/portal.service <<'UNIT'
[Unit]
Description=Floodgate placeholder portal
After=network-online.target
[Service]
DynamicUser=yes
ExecStart=/usr/bin/python3 -m http.server ${app_port} --directory /srv/portal
Restart=always
[Install]
WantedBy=multi-user.target
UNIT
systemctl daemon-reload
systemctl enable --now portal.service
