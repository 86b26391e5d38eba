#!/bin/sh
# RabbitMQ users and permissions for hypertcp-gateway: the embedded broker's roles (README,
# Security) as RabbitMQ users with topic permissions, the counterpart of deploy/mosquitto/acl.
# Default topics and the peer topics the README's gateway config sets (topics.peer
# hypertcp/%c/peer, topics.peerBroadcast hypertcp/$peers/broadcast); the MQTT plugin maps `/` to
# `.` in routing keys, so the patterns below are on `hypertcp.<id>.up` and so on. Change them if
# you changed the templates.
#
#   GATEWAY_PASSWORD=… APP_PASSWORD=… MONITOR_PASSWORD=… ADMIN_PASSWORD=… sh deploy/rabbitmq/permissions.sh
#
# A user whose password is not given is left alone. RABBITMQCTL (default `rabbitmqctl`, e.g.
# `rabbitmqctl -n rabbit@host`) and RABBITMQ_VHOST (default `/`) say where. Run it again after a
# change: it sets, it does not add. Then turn the guest user off (`rabbitmqctl delete_user guest`).
#
# Topic permissions read topics, not payloads: with the peer topics only the gateway user writes
# what a gateway alone may say (a device's `from`, a takeover notice), and the gateways believe
# neither on dn, hypertcp/broadcast or ctl. A publish or a subscription the permissions refuse
# closes the client's connection (RabbitMQ 3.10's MQTT plugin, MQTT 3.1.1).
set -eu

ctl=${RABBITMQCTL:-rabbitmqctl}
vhost=${RABBITMQ_VHOST:-/}
exchange=amq.topic # the MQTT plugin's exchange (mqtt.exchange)

# name, password variable, write pattern, read pattern (on routing keys)
role() {
  eval "password=\${$2:-}"
  if [ -z "$password" ]; then
    echo "$1: $2 not set, left alone"
    return
  fi
  if $ctl list_users --quiet --no-table-headers | cut -f1 | grep -qx "$1"; then
    $ctl change_password "$1" "$password" >/dev/null
  else
    $ctl add_user "$1" "$password" >/dev/null
  fi
  # The MQTT plugin's own resources: each client's subscription queues, bound to the exchange.
  $ctl set_permissions -p "$vhost" "$1" '^mqtt-subscription-' \
    "^(amq\\.topic|mqtt-subscription-.*)\$" "^(amq\\.topic|mqtt-subscription-.*)\$" >/dev/null
  $ctl set_topic_permissions -p "$vhost" "$1" "$exchange" "$3" "$4" >/dev/null
  echo "$1: set"
}

# What applications read: uplinks, presence, the gateways' status, broadcasts (theirs and devices').
reads='^hypertcp\.([^.]+\.(up|status)|\$gateway\.[^.]+\.status|broadcast|\$peers\.broadcast)$'

# Gateways (every instance may log in as this one user, each with its own client ids): uplinks,
# presence, the peer topics, their own status and last will.
role gateway GATEWAY_PASSWORD '^hypertcp\.' '^hypertcp\.'
# Applications: downlinks and broadcasts.
role app APP_PASSWORD '^hypertcp\.([^.]+\.dn|broadcast)$' "$reads"
# Monitoring: read only (a routing key is never empty).
role monitor MONITOR_PASSWORD '^$' "$reads"
# Operators: what applications may, and the control topic (kick, redirect; the gateways obey a
# redirect only to a target in their redirectAllow). They read everything; no peer topic.
role admin ADMIN_PASSWORD '^hypertcp\.([^.]+\.(dn|ctl)|broadcast)$' '^hypertcp\.'
