#!/bin/bash
# Floodgate's bootstrap around the application's own (fleet.user_data, or user_data.sh): run it
# once, then tell Auto Scaling the instance is ready, on this boot and on every later one.
#
# Why: AWS stops an instance launching into the warm pool "as soon as it finishes launching",
# without waiting for user data, and cloud-init runs user data on the first boot only; without
# a launch lifecycle hook a pool instance can enter service with its bootstrap cut short. The
# group's hook (${hook_name}) holds each new instance, in Warmed:Pending:Wait on its way into
# the pool and in Pending:Wait on its way into service, until floodgate-ready completes it:
# after the application answers its health check, whatever the pool's state. Past
# ${hook_timeout_s} s AWS abandons the instance and launches another (components/web_fleet.py).
# Placeholders are filled in by components/web_fleet.py; the application's script is base64.
set -euo pipefail
install -d -m 0755 /opt/floodgate
echo '${app_bootstrap_b64}' | base64 -d > /opt/floodgate/app-bootstrap.sh
chmod 0700 /opt/floodgate/app-bootstrap.sh
cat > /opt/floodgate/ready.sh <<'READY'
#!/bin/bash
# Release the launch hook each time AWS holds this instance: on its way into the warm pool and
# on its way into service. A Stopped pool instance boots again into service; a Running or
# Hibernated one does not, so this watches the target lifecycle state (instance metadata)
# instead of running once per boot. `ready.sh once` makes one check and exits.
set -uo pipefail
imds() {
  local token
  token=$$(curl -fsS -X PUT http://169.254.169.254/latest/api/token \
    -H "X-aws-ec2-metadata-token-ttl-seconds: 300") || return 1
  curl -fsS -H "X-aws-ec2-metadata-token: $$token" "http://169.254.169.254/latest/meta-data/$$1"
}
describe() {
  aws autoscaling describe-auto-scaling-instances --region "$$region" \
    --instance-ids "$$instance" --query "AutoScalingInstances[0].$$1" --output text
}
release() {
  # Wait for the application, then complete the hook if AWS is holding the instance; retry
  # what fails (the API, the role's policy) until the hook's own timeout.
  local deadline=$$((SECONDS + ${hook_timeout_s})) state group
  until curl -fsS -o /dev/null "http://127.0.0.1:${app_port}${health_check_path}"; do
    [ "$$SECONDS" -ge "$$deadline" ] && { echo "floodgate-ready: ${health_check_path} never answered"; return 1; }
    sleep 2
  done
  while [ "$$SECONDS" -lt "$$deadline" ]; do
    state=$$(describe LifecycleState) || state=""
    case "$$state" in
      *Pending:Wait)
        group=$$(describe AutoScalingGroupName) &&
          aws autoscaling complete-lifecycle-action --region "$$region" \
            --lifecycle-hook-name ${hook_name} --auto-scaling-group-name "$$group" \
            --instance-id "$$instance" --lifecycle-action-result CONTINUE && return 0 ;;
      InService|Warmed:*|Standby|Detached) return 0 ;;  # nothing held
    esac
    sleep 5
  done
  echo "floodgate-ready: could not release the launch hook; AWS abandons the instance"
  return 1
}
until instance=$$(imds instance-id) && region=$$(imds placement/region); do sleep 2; done
seen=""
while true; do
  target=$$(imds autoscaling/target-lifecycle-state) || target=""
  if [ -n "$$target" ] && [ "$$target" != "$$seen" ]; then
    release && seen=$$target
  fi
  [ "$${1:-}" = once ] && exit 0
  sleep 5
done
READY
chmod 0755 /opt/floodgate/ready.sh
cat > /etc/systemd/system/floodgate-ready.service <<'UNIT'
[Unit]
Description=Floodgate: release the launch lifecycle hook whenever the portal is healthy
After=network-online.target
Wants=network-online.target
[Service]
ExecStart=/opt/floodgate/ready.sh
Restart=always
RestartSec=5
[Install]
WantedBy=multi-user.target
UNIT
/opt/floodgate/app-bootstrap.sh
systemctl daemon-reload
systemctl enable floodgate-ready.service
systemctl start --no-block floodgate-ready.service
