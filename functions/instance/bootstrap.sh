#!/bin/bash
# Floodgate's bootstrap around the application's own (fleet.user_data, or user_data.sh): run it
# once, then tell Auto Scaling the instance is ready, on this boot and on every later one.
#
# Why: AWS stops an instance launching into the warm pool "as soon as it finishes launching",
# without waiting for user data, and cloud-init runs user data on the first boot only; without
# a launch lifecycle hook a pool instance can enter service with its bootstrap cut short. The
# group's hook (${hook_name}) holds each new instance, in Warmed:Pending:Wait on its way into
# the pool and in Pending:Wait on its way into service, until floodgate-ready completes it:
# after the application answers its health check. Past ${hook_timeout_s} s AWS abandons the
# instance and launches another (components/web_fleet.py).
# Placeholders are filled in by components/web_fleet.py; the application's script is base64.
set -euo pipefail
install -d -m 0755 /opt/floodgate
echo '${app_bootstrap_b64}' | base64 -d > /opt/floodgate/app-bootstrap.sh
chmod 0700 /opt/floodgate/app-bootstrap.sh
cat > /opt/floodgate/ready.sh <<'READY'
#!/bin/bash
# Complete the launch hook once the application answers its health check (every boot).
set -uo pipefail
imds() {
  local token
  token=$$(curl -fsS -X PUT http://169.254.169.254/latest/api/token \
    -H "X-aws-ec2-metadata-token-ttl-seconds: 300")
  curl -fsS -H "X-aws-ec2-metadata-token: $$token" "http://169.254.169.254/latest/meta-data/$$1"
}
instance=$$(imds instance-id)
region=$$(imds placement/region)
deadline=$$((SECONDS + ${hook_timeout_s}))
until curl -fsS -o /dev/null "http://127.0.0.1:${app_port}${health_check_path}"; do
  if [ "$$SECONDS" -ge "$$deadline" ]; then
    echo "floodgate-ready: no answer on ${health_check_path}; the hook will abandon $$instance"
    exit 1
  fi
  sleep 2
done
describe() {
  aws autoscaling describe-auto-scaling-instances --region "$$region" \
    --instance-ids "$$instance" --query "AutoScalingInstances[0].$$1" --output text
}
group=$$(describe AutoScalingGroupName)
while true; do
  case "$$(describe LifecycleState)" in
    *Pending:Wait)
      aws autoscaling complete-lifecycle-action --region "$$region" \
        --lifecycle-hook-name ${hook_name} --auto-scaling-group-name "$$group" \
        --instance-id "$$instance" --lifecycle-action-result CONTINUE && exit 0 ;;
    *) exit 0 ;;  # nothing held: a reboot of an instance in service
  esac
  [ "$$SECONDS" -ge "$$deadline" ] && exit 1
  sleep 5  # the role's policy can lag the group's creation by seconds
done
READY
chmod 0755 /opt/floodgate/ready.sh
cat > /etc/systemd/system/floodgate-ready.service <<'UNIT'
[Unit]
Description=Floodgate: release the launch lifecycle hook once the portal is healthy
After=network-online.target
Wants=network-online.target
[Service]
Type=oneshot
ExecStart=/opt/floodgate/ready.sh
[Install]
WantedBy=multi-user.target
UNIT
/opt/floodgate/app-bootstrap.sh
systemctl daemon-reload
systemctl enable floodgate-ready.service
systemctl start --no-block floodgate-ready.service
