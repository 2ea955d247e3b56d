#!/bin/sh
# Notify script for the two-node example: the instance manages its VIP only through here.
#   notify_master "/etc/keepalived/notify.sh master"
#   notify_backup "/etc/keepalived/notify.sh backup"
set -eu

VIP=192.168.121.100/24
DEV=eth1

case "${1:-}" in
    master)
        ip address replace "$VIP" dev "$DEV"
        ;;
    backup|fault|stop)
        ip address del "$VIP" dev "$DEV" 2>/dev/null || true
        ;;
    *)
        echo "usage: $0 master|backup|fault|stop" >&2
        exit 2
        ;;
esac
