# Shared by scripts/setup-and-run and scripts/test: Debian packages and the Rust toolchain.
# Sourced, not run.

# What building and testing weft needs from Debian 12. libprotobuf-dev holds
# google/protobuf/*.proto (named explicitly: --no-install-recommends leaves it out otherwise).
WEFT_DEB_PACKAGES=(
    protobuf-compiler libprotobuf-dev libnftnl-dev libmnl-dev pkg-config
    iproute2 nftables iputils-ping util-linux gcc libc6-dev ca-certificates openssl
)

# What the container runtime tests need on top (scripts/test only, not setup-and-run): podman
# 4.3 with its CNI backend (runc: crun fails on Debian 12's cgroup layout), containerd 1.6 for
# `ctr run --cni`, the reference CNI plugins, and static busybox for a registry-free image;
# jq for the `--format docker` test (client/tests/cli.rs); systemd for `systemd-analyze verify`/`security` on deploy/weftd.service (server/tests/systemd.rs);
# curl for the tests that scrape weftd's metrics (server/tests/metrics.rs, networks.rs, dns.rs, check.rs).
# promtool (server/tests/metrics.rs) comes from Debian's prometheus package, extracted without
# installing it (installing would start a Prometheus server on the host): install_promtool.
WEFT_TEST_DEB_PACKAGES=(
    podman runc containernetworking-plugins busybox-static containerd
    bind9-dnsutils dnsmasq-base
    jq
    systemd
    curl
)

# Python packages the tests need (scripts/test only): grpcio's default channel and its stub
# generator, for the "any gRPC client" tests and examples/python/ (server/tests/clients.rs).
WEFT_TEST_PIP_PACKAGES=(grpcio==1.85.1 grpcio-tools==1.85.1)

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

require_root() {
    [ "$(id -u)" -eq 0 ] || die "run this as root (sudo $0): it installs packages and weftd manages network namespaces"
}

# Installs the given Debian packages that are not installed yet (apt-get update first).
apt_install_missing() {
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    if [ "${#missing[@]}" -eq 0 ]; then
        return 0
    fi
    log "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
}

# Puts Debian's promtool (from the prometheus package) at /usr/local/bin/promtool, extracted
# from the .deb, so no Prometheus service is installed or started on the host.
install_promtool() {
    command -v promtool >/dev/null 2>&1 && return 0
    local d
    d=$(mktemp -d)
    log "extracting promtool from Debian's prometheus package"
    (cd "$d" && apt-get download -q prometheus) || { apt-get update -q && (cd "$d" && apt-get download -q prometheus); }
    dpkg-deb -x "$d"/prometheus_*.deb "$d/x"
    install -m 0755 "$d/x/usr/bin/promtool" /usr/local/bin/promtool
    rm -rf "$d"
}

# Puts cargo on PATH (rustup's usual place, also under sudo), or installs rustup's stable
# toolchain when there is none. Debian 12's own rustc is too old (weft needs >= 1.94).
ensure_cargo() {
    local d
    for d in "${CARGO_HOME:-$HOME/.cargo}/bin" /root/.cargo/bin; do
        [ -x "$d/cargo" ] && case ":$PATH:" in *":$d:"*) ;; *) PATH="$d:$PATH" ;; esac
    done
    export PATH
    if ! command -v cargo >/dev/null 2>&1; then
        log "no cargo found: installing the stable Rust toolchain with rustup"
        apt_install_missing curl
        curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal \
            --component clippy,rustfmt
        PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
        export PATH
    fi
    log "$(cargo --version), $(rustc --version)"
}

# Installs the given pip requirements (name==version) that python3 does not have at that
# version yet; Debian's own Python refuses system-wide installs (PEP 668) unless told.
pip_install_missing() {
    local missing=() r
    for r in "$@"; do
        python3 -m pip show "${r%%==*}" 2>/dev/null | grep -qx "Version: ${r#*==}" || missing+=("$r")
    done
    if [ "${#missing[@]}" -eq 0 ]; then
        return 0
    fi
    python3 -m pip --version >/dev/null 2>&1 || apt_install_missing python3-pip
    log "pip install ${missing[*]}"
    local args=(install --quiet --disable-pip-version-check "${missing[@]}")
    python3 -m pip "${args[@]}" 2>/dev/null || python3 -m pip "${args[@]}" --break-system-packages
}
