# The node agent image of kubectl-svcpath: svcpath-agent and the read-only
# tools it runs (iptables with both the legacy and nft backends, nft, ip,
# conntrack, ipvsadm). goreleaser builds it for linux/amd64 and linux/arm64
# with the svcpath-agent binary of the same release next to this file;
# by hand:
#
#   CGO_ENABLED=0 go build -o svcpath-agent ./cmd/svcpath-agent
#   docker build -f hack/agent.Dockerfile -t svcpath-agent:dev .
FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      iptables nftables iproute2 conntrack ipvsadm netbase \
 && rm -rf /var/lib/apt/lists/*
COPY svcpath-agent /svcpath-agent
ENTRYPOINT ["/svcpath-agent"]
CMD ["collect"]
