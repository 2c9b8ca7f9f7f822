#!/usr/bin/env bash
# make e2e: for each kube-proxy mode (E2E_MODES, default "iptables
# nftables"), bring the lab up, run the e2e tests (hack/e2e, build tag e2e)
# inside the lab's network namespace, and bring the lab down. Then check
# that the machine is as it was (hack/lab/machine-state.sh before and
# after). Exit 0 only when every mode passed and nothing was left behind.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
cd "$REPO"
LAB=${SVCPATH_LAB_DIR:-/var/tmp/${SVCPATH_LAB_NAME:-svcpath-lab}}
MODES=${E2E_MODES:-iptables nftables}
GO=${GO:-$(command -v go 2>/dev/null || echo /usr/local/go/bin/go)}
OUT=$REPO/bin/e2e
mkdir -p "$OUT"

log() { printf '\ne2e: %s\n' "$*" >&2; }
now() { date +%s; }

# A lab left over from an interrupted run would make "before" wrong.
hack/lab/lab.sh down >/dev/null 2>&1 || true
hack/lab/machine-state.sh >"$OUT/machine-before.txt"
trap 'hack/lab/lab.sh down || true' EXIT INT TERM

t0=$(now)
# The cached Kubernetes binaries (cold: minutes) before anything else.
hack/lab/build-k8s.sh
t_k8s=$(now)
"$GO" test -c -tags e2e -o "$OUT/e2e.test" ./hack/e2e
failed=()
declare -A took
for mode in $MODES; do
	log "=== kube-proxy $mode mode ==="
	m0=$(now)
	hack/lab/lab.sh up "$mode"
	rc=0
	(
		# shellcheck disable=SC1090
		source <(hack/lab/lab.sh env)
		cd hack/e2e
		exec nsenter --net="/run/netns/$SVCPATH_LAB_NETNS" -- env SVCPATH_REPO="$REPO" \
			"$OUT/e2e.test" -test.v -test.count=1 -test.timeout=20m ${E2E_RUN:+-test.run "$E2E_RUN"}
	) 2>&1 | tee "$OUT/e2e-$mode.log" || rc=$?
	hack/lab/lab.sh down
	took[$mode]=$(($(now) - m0))
	((rc == 0)) || failed+=("$mode")
done
trap - EXIT INT TERM

hack/lab/machine-state.sh >"$OUT/machine-after.txt"
if ! diff -u "$OUT/machine-before.txt" "$OUT/machine-after.txt"; then
	log "the machine is not as it was before the lab (diff above)"
	failed+=(machine-state)
fi
log "kubernetes binaries: $((t_k8s - t0)) s; $(for m in $MODES; do printf '%s: %s s; ' "$m" "${took[$m]:-?}"; done)total $(($(now) - t0)) s"
if ((${#failed[@]})); then
	log "FAILED: ${failed[*]} (logs: $OUT, lab logs: $LAB/logs)"
	exit 1
fi
log "PASS"
