#!/usr/bin/env bash
# The RabbitMQ user set-up of the book's Vagrant VM, in one place: the system node of
# vagrant/provision.sh and the private test node of scripts/broker.sh (every test run)
# both go through provision_broker_user, so CI runs the steps the VM runs.
#
# As a library:  . scripts/provision-broker.sh
#                provision_broker_user CTL USER PASSWORD
# As a command:  RABBITMQCTL=CTL BROKER_USER=U BROKER_PASSWORD=P scripts/provision-broker.sh
#                (defaults when unset: rabbitmqctl, websockets, rabbitmq)
#
# CTL is how to call rabbitmqctl for the node: a command or a shell function, run as
# CTL SUBCOMMAND ARGS... (e.g. `rabbitmqctl`, or broker.sh's rctl with its node and
# cookie). The steps, each idempotent: create USER or set its password, tag it
# administrator (the management UI), grant it configure, write and read on every
# resource of vhost /, and delete guest. The password goes to rabbitmqctl on its
# standard input, never on a command line (ps would show it).

# provision_broker_user CTL USER PASSWORD: exit status 0 once every step succeeded
provision_broker_user() {
    local ctl=$1 user=$2 pass=$3 users
    if [ -z "$user" ] || [ -z "$pass" ]; then
        echo "provision-broker: user and password must not be empty" >&2
        return 2
    fi
    case $pass in *$'\n'*)
        echo "provision-broker: the password must be one line" >&2
        return 2
        ;;
    esac
    users=$("$ctl" list_users --silent) || return 1
    if awk -v u="$user" '$1 == u { found = 1 } END { exit !found }' <<<"$users"; then
        printf '%s\n' "$pass" | "$ctl" change_password "$user" >/dev/null || return 1
    else
        printf '%s\n' "$pass" | "$ctl" add_user "$user" >/dev/null || return 1
    fi
    "$ctl" set_user_tags "$user" administrator >/dev/null || return 1
    "$ctl" set_permissions -p / "$user" '.*' '.*' '.*' >/dev/null || return 1
    if [ "$user" != guest ] && awk '$1 == "guest" { found = 1 } END { exit !found }' <<<"$users"; then
        "$ctl" delete_user guest >/dev/null || return 1
    fi
    return 0
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    set -euo pipefail
    # an unset variable takes the default; a set but empty one is an error
    provision_broker_user "${RABBITMQCTL:-rabbitmqctl}" "${BROKER_USER-websockets}" \
        "${BROKER_PASSWORD-rabbitmq}"
    echo "provision-broker: user ${BROKER_USER:-websockets} ready, guest removed"
fi
