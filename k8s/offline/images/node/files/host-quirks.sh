#!/bin/sh
# Run before containerd starts: settings that only some hosts need, applied only there.
set -eu
# Without CAP_SYS_RESOURCE in the bounding set (Firecracker VMs), a pod's runc cannot lower
# oom_score_adj below containerd's own (kubelet asks -998) and every pod fails with "can't get
# final child's PID from pipe: EOF". Tell containerd to keep pods at or above its own score.
bounding="$(awk '/^CapBnd:/ { print $2 }' /proc/self/status)"
if [ $(( (0x$bounding >> 24) & 1 )) -eq 0 ]; then
    sed -i 's/^\([[:space:]]*restrict_oom_score_adj\) = false/\1 = true/' /etc/containerd/config.toml
fi
