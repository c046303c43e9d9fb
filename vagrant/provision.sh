#!/usr/bin/env bash
# Provisions the Vagrant VM: RabbitMQ with the management plugin, the book's
# user, no guest. Idempotent.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y --no-install-recommends rabbitmq-server
rabbitmq-plugins enable rabbitmq_management rabbitmq_web_stomp
systemctl enable --now rabbitmq-server
user=${BROKER_USER:-websockets}
pass=${BROKER_PASSWORD:-rabbitmq}
if ! rabbitmqctl list_users --quiet | grep -q "^$user\b"; then
    rabbitmqctl add_user "$user" "$pass"
fi
rabbitmqctl set_user_tags "$user" administrator
rabbitmqctl set_permissions -p / "$user" '.*' '.*' '.*'
rabbitmqctl delete_user guest 2>/dev/null || true
echo "RabbitMQ ready: amqp://$user:***@localhost:5672, management http://localhost:15672/"
