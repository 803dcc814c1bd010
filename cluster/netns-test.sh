#!/usr/bin/env bash
# Two test "hosts" on one machine: two network namespaces joined by a veth pair, for multi-node checks
# of gift without a second machine (needs root and iproute2).
#
#   cluster/netns-test.sh check            exit 0 if network namespaces (and veth pairs) can be created here
#   cluster/netns-test.sh run COMMAND...   create the two hosts, run COMMAND inside the first one, remove them
#
# `run` creates namespaces giftA-PID (address 10.213.7.1/24) and giftB-PID (10.213.7.2/24), where PID is this
# script's process id, joined by veth gfa-PID <-> gfb-PID, with lo up in both; writes an rsh agent for Open MPI
# (`--mca plm_rsh_agent "$GIFT_RSH_AGENT"`) that runs `HOST COMMAND...` in the namespace owning HOST; then
# runs COMMAND in giftA-PID with GIFT_NETNS_A, GIFT_NETNS_B, GIFT_RSH_AGENT and GIFT_NETNS_HOSTS
# (10.213.7.1:1,10.213.7.2:1) exported. Files are shared (only the network is separate). Whatever happens
# (COMMAND fails, the script gets INT or TERM), every process left in the two namespaces is stopped and the
# namespaces, the veth pair and the agent are removed. The exit status is COMMAND's (130/143 on INT/TERM).
set -u

ADDR_A=10.213.7.1
ADDR_B=10.213.7.2
PREFIX=24

die() { echo "netns-test: $*" >&2; exit 2; }

check() {
    [ "$(id -u)" = 0 ] || { echo "netns-test: needs root" >&2; return 1; }
    command -v ip >/dev/null 2>&1 || { echo "netns-test: ip (iproute2) not found" >&2; return 1; }
    local ns="giftcheck-$$" rc=0
    ip netns add "$ns" 2>/dev/null || { echo "netns-test: cannot create a network namespace" >&2; return 1; }
    ip -n "$ns" link add gfc0 type veth peer name gfc1 2>/dev/null || { echo "netns-test: cannot create a veth pair" >&2; rc=1; }
    ip netns del "$ns" 2>/dev/null || { echo "netns-test: cannot delete namespace $ns" >&2; rc=1; }
    return $rc
}

NS_A="giftA-$$"
NS_B="giftB-$$"
VETH_A="gfa-$$"          # at most 11 characters (IFNAMSIZ is 16 with the NUL)
VETH_B="gfb-$$"
made_a=0 made_b=0 made_veth=0 workdir="" child=""

# stop what still runs in one of our namespaces: TERM, up to 5 s, then KILL
stop_pids() {
    local ns=$1 pids i
    pids=$(ip netns pids "$ns" 2>/dev/null) || return 0
    [ -n "$pids" ] || return 0
    kill -TERM $pids 2>/dev/null
    for i in $(seq 50); do
        pids=$(ip netns pids "$ns" 2>/dev/null)
        [ -n "$pids" ] || return 0
        sleep 0.1
    done
    kill -KILL $pids 2>/dev/null
    sleep 0.1
}

cleanup() {
    trap - EXIT INT TERM
    if [ -n "$child" ] && kill -0 "$child" 2>/dev/null; then kill -TERM "$child" 2>/dev/null; fi
    [ $made_a = 1 ] && stop_pids "$NS_A"
    [ $made_b = 1 ] && stop_pids "$NS_B"
    [ $made_veth = 1 ] && [ $made_a = 0 ] && ip link del "$VETH_A" 2>/dev/null   # never moved: still here
    [ $made_a = 1 ] && ip netns del "$NS_A" 2>/dev/null    # takes the veth pair with it
    [ $made_b = 1 ] && ip netns del "$NS_B" 2>/dev/null
    # the veth can outlive the namespace name briefly while the kernel tears it down
    [ $made_veth = 1 ] && ip link del "$VETH_A" 2>/dev/null
    [ -n "$workdir" ] && rm -rf "$workdir"
    return 0
}

on_signal() { cleanup; exit "$1"; }

setup() {
    ip netns add "$NS_A" || die "cannot create namespace $NS_A"; made_a=1
    ip netns add "$NS_B" || die "cannot create namespace $NS_B"; made_b=1
    ip -n "$NS_A" link add "$VETH_A" type veth peer name "$VETH_B" netns "$NS_B" || die "cannot create veth pair"
    made_veth=1
    ip -n "$NS_A" addr add "$ADDR_A/$PREFIX" dev "$VETH_A" || die "cannot address $VETH_A"
    ip -n "$NS_B" addr add "$ADDR_B/$PREFIX" dev "$VETH_B" || die "cannot address $VETH_B"
    for ns in "$NS_A" "$NS_B"; do ip -n "$ns" link set lo up || die "cannot bring lo up in $ns"; done
    ip -n "$NS_A" link set "$VETH_A" up || die "cannot bring $VETH_A up"
    ip -n "$NS_B" link set "$VETH_B" up || die "cannot bring $VETH_B up"

    workdir=$(mktemp -d /tmp/gift-netns-$$.XXXXXX) || die "mktemp failed"
    cat > "$workdir/rsh-agent" <<AGENT
#!/usr/bin/env bash
# rsh agent for Open MPI: HOST COMMAND... runs COMMAND in the namespace that owns HOST
host=\$1; shift
case "\$host" in
  $ADDR_A) ns=$NS_A ;;
  $ADDR_B) ns=$NS_B ;;
  *) echo "netns rsh agent: unknown host \$host (only $ADDR_A and $ADDR_B)" >&2; exit 255 ;;
esac
exec ip netns exec "\$ns" bash -c "\$*"
AGENT
    chmod +x "$workdir/rsh-agent"

    # wait until both ends report carrier (state UP), at most 5 s
    local i
    for i in $(seq 50); do
        ip -n "$NS_A" -o link show dev "$VETH_A" | grep -q "state UP" &&
            ip -n "$NS_B" -o link show dev "$VETH_B" | grep -q "state UP" && return 0
        sleep 0.1
    done
    die "veth link $VETH_A <-> $VETH_B did not come up"
}

case "${1:-}" in
check)
    check; exit $? ;;
run)
    shift
    [ $# -gt 0 ] || die "usage: $0 run COMMAND..."
    [ "$(id -u)" = 0 ] || die "needs root"
    trap cleanup EXIT
    trap 'on_signal 130' INT
    trap 'on_signal 143' TERM
    setup
    export GIFT_NETNS_A="$NS_A" GIFT_NETNS_B="$NS_B" GIFT_RSH_AGENT="$workdir/rsh-agent" \
           GIFT_NETNS_HOSTS="$ADDR_A:1,$ADDR_B:1"
    # in the background so that INT/TERM reach the trap at once; stdin passed on explicitly
    ip netns exec "$NS_A" "$@" 0<&0 &
    child=$!
    wait "$child"
    rc=$?
    child=""
    cleanup
    exit $rc ;;
*)
    echo "usage: $0 check | run COMMAND..." >&2; exit 2 ;;
esac
