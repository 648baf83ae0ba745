"""bench/run --suite boot: how long a QEMU machine takes from power-on to its boot script.

A SeaBIOS machine whose iPXE NIC ROM boots from the network, and an OVMF machine whose own PXE
client chainloads iPXE (Debian's ipxe.efi) which then fetches the script, each booted from
Kindling (dhcp.v6.quiet_ra at its default, twice: the second run is the A/A yardstick), from
Kindling with `quiet_ra: off` (main's behaviour before issue 13) and from dnsmasq with
`--enable-ra` (the way dnsmasq users run it), on the same namespace lab, servers interleaved and
rotated every repetition. The same two machines also boot over IPv6 alone (their IPv4 and ARP
frames dropped at the tap): router advertisement with the M flag, DHCPv6 option 59, TFTP over
IPv6, from Kindling (twice, with its own router advertisements) and from dnsmasq. The time is from QEMU's start to the marker the
served script prints on the serial console. See bench/README.md.

Imported by bench/run; standard library only.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shutil
import signal
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Callable

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
WORK = BENCH / ".work"

NET = "10.99.80"
V6_PREFIX = "fd00:99::"
SERVER_MAC = "02:00:0a:63:50:01"
VM_MAC = "52:54:00:99:80:10"
IPXE_ROM = "/usr/lib/ipxe/qemu/pxe-e1000.rom"
IPXE_EFI = "/usr/lib/ipxe/ipxe.efi"
OVMF_CODE = "/usr/share/OVMF/OVMF_CODE_4M.fd"
OVMF_VARS = "/usr/share/OVMF/OVMF_VARS_4M.fd"
V4_FIRMWARES = ["seabios-ipxe", "ovmf-pxe-ipxe"]
# The same machines on a tap that drops their IPv4 and ARP frames: only IPv6 can boot them.
V6_FIRMWARES = ["seabios-ipxe-v6", "ovmf-pxe-ipxe-v6"]
FIRMWARES = V4_FIRMWARES + V6_FIRMWARES
FIRMWARE_LABELS = {
    "seabios-ipxe": "SeaBIOS, iPXE ROM → script",
    "ovmf-pxe-ipxe": "OVMF PXE → ipxe.efi → script",
    "seabios-ipxe-v6": "IPv6 only: SeaBIOS, iPXE ROM → script",
    "ovmf-pxe-ipxe-v6": "IPv6 only: OVMF PXE → ipxe.efi → script",
}
SERVERS = ["kindling", "kindling-again", "kindling-quiet-ra-off", "dnsmasq"]
V6_SERVERS = ["kindling", "kindling-again", "dnsmasq"]
SERVER_LABELS = {
    "kindling": "Kindling (quiet_ra: auto)",
    "kindling-again": "Kindling again (A/A)",
    "kindling-quiet-ra-off": "Kindling, quiet_ra: off (main before issue 13)",
    "dnsmasq": "dnsmasq --enable-ra",
}
V6_SERVER_LABELS = {
    "kindling": "Kindling (router_advertisements: true)",
    "kindling-again": "Kindling again (A/A)",
    "dnsmasq": "dnsmasq --enable-ra, DHCPv6 range",
}


def servers_for(firmware: str) -> list[str]:
    return V6_SERVERS if firmware in V6_FIRMWARES else SERVERS
# Every server waits this long after it is ready before the machine powers on, so that a boot
# never lands in Kindling's start-up listening (3.6 s after its router solicitation): a netboot
# server runs long before the machines it boots are switched on.
SETTLE = 4.0
BOOT_TIMEOUT = 120.0

Log = Callable[[str], None]


def run(argv: list[str], timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          timeout=timeout)


def must(argv: list[str]) -> None:
    p = run(argv)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {p.stderr.strip()}")


def in_ns(ns: str, argv: list[str]) -> list[str]:
    return ["ip", "netns", "exec", ns, *argv]


class BootLab:
    """A bridge in its own namespace, a server namespace plugged into it (eth0 at NET.1/24 and
    fd00:99::1/64) and two taps for QEMU on the bridge: `kbtap0`, and `kbtap6` whose IPv4 and
    ARP frames an nftables netdev filter drops as they enter the bridge (for the IPv6-only
    boots). Removed by close() (safe to call twice)."""

    def __init__(self) -> None:
        tag = f"{os.getpid() % 100000}"
        self.br_ns, self.srv_ns = f"kbboot-{tag}-br", f"kbboot-{tag}-srv"
        self.tap = "kbtap0"
        self.tap6 = "kbtap6"
        self.up = False

    def tap_for(self, firmware: str) -> str:
        return self.tap6 if firmware in V6_FIRMWARES else self.tap

    def open(self) -> None:
        self.up = True
        for ns in (self.br_ns, self.srv_ns):
            must(["ip", "netns", "add", ns])
            must(["ip", "-n", ns, "link", "set", "lo", "up"])
        must(["ip", "-n", self.br_ns, "link", "add", "br0", "type", "bridge", "stp_state", "0",
              "mcast_snooping", "0"])
        must(["ip", "-n", self.br_ns, "link", "set", "br0", "up"])
        must(["ip", "-n", self.br_ns, "link", "add", "p-srv", "type", "veth", "peer", "name", "eth0",
              "netns", self.srv_ns, "address", SERVER_MAC])
        must(["ip", "-n", self.br_ns, "link", "set", "p-srv", "master", "br0", "up"])
        must(["ip", "-n", self.srv_ns, "link", "set", "eth0", "up"])
        must(["ip", "-n", self.srv_ns, "addr", "add", f"{NET}.1/24", "dev", "eth0"])
        must(["ip", "-n", self.srv_ns, "addr", "add", f"{V6_PREFIX}1/64", "dev", "eth0", "nodad"])
        for tap in (self.tap, self.tap6):
            must(["ip", "-n", self.br_ns, "tuntap", "add", "dev", tap, "mode", "tap"])
            must(["ip", "-n", self.br_ns, "link", "set", tap, "master", "br0", "up"])
        rules = ("table netdev kbboot_v6only {\n"
                 "  chain ingress {\n"
                 f"    type filter hook ingress device \"{self.tap6}\" priority 0;\n"
                 "    ether type { ip, arp } counter drop\n"
                 "  }\n"
                 "}\n")
        p = subprocess.run(in_ns(self.br_ns, ["nft", "-f", "-"]), input=rules, text=True,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        if p.returncode != 0:
            raise RuntimeError(f"nft: {p.stderr.strip()}")
        # The server's link-local address must be past duplicate address detection before any
        # server starts: RAs are sent from it.
        deadline = time.monotonic() + 20
        while True:
            p = run(["ip", "-n", self.srv_ns, "-6", "addr", "show", "dev", "eth0", "tentative"])
            q = run(["ip", "-n", self.srv_ns, "-6", "addr", "show", "dev", "eth0", "scope", "link"])
            if not p.stdout.strip() and "inet6 fe80" in q.stdout:
                break
            if time.monotonic() > deadline:
                raise RuntimeError("the server's link-local address never left DAD")
            time.sleep(0.1)

    def close(self) -> None:
        if not self.up:
            return
        self.up = False
        for ns in (self.srv_ns, self.br_ns):
            # Only processes this suite started run in these namespaces.
            p = run(["ip", "netns", "pids", ns])
            for pid in p.stdout.split():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
            run(["ip", "netns", "del", ns])


class Process:
    """A server or VM started by the suite, its output in a file, killed by stop()."""

    def __init__(self, argv: list[str], log_path: Path) -> None:
        self.log_path = log_path
        self.file = open(log_path, "w")
        self.proc = subprocess.Popen(argv, stdout=self.file, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)

    def text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def wait_for(self, needles: list[str], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            text = self.text()
            if all(n in text for n in needles):
                return
            if self.proc.poll() is not None:
                raise RuntimeError(f"exited before {needles}: {text[-2000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"no {needles} within {timeout}s: {text[-2000:]}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=10)
        self.file.close()


def write_tree(root: Path, token: str) -> str:
    """The boot tree: the script printing a marker split across two variables (so it appears only
    when iPXE ran the script), and ipxe.efi for OVMF's PXE client."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "boot.ipxe").write_text(
        f"#!ipxe\nset a KINDLING\nset b BOOT-{token}\necho ${{a}}-${{b}}\nsleep 3600\n")
    shutil.copy(IPXE_EFI, root / "ipxe.efi")
    return f"KINDLING-BOOT-{token}"


def kindling_config(work: Path, root: Path, quiet_ra: bool, v6: bool = False) -> Path:
    state = work / "state"
    state.mkdir(parents=True, exist_ok=True)
    text = (
        "# generated by bench/run --suite boot\n"
        f"state_dir: {state}\n"
        "log: { level: info }\n"
        "tftp:\n"
        + ("  listen: [\"0.0.0.0:69\", \"[::]:69\"]\n" if v6 else "  listen: [\"0.0.0.0:69\"]\n") +
        f"  root: {root}\n"
        "boot:\n"
        "  bios: undionly.kpxe\n"
        "  uefi_x64: ipxe.efi\n"
        "  ipxe: boot.ipxe\n"
        "dhcp:\n"
        "  mode: server\n"
        "  interfaces: [eth0]\n"
        "  ping_check: false\n"
        "  subnets:\n"
        f"    - {{ network: {NET}.0/24, range: [{NET}.100, {NET}.200], router: {NET}.1 }}\n"
    )
    if v6:
        # DHCPv6 on the segment's prefix and Kindling's own RAs: M and O, the prefix on-link
        # and not autonomous, router lifetime 0.
        text += ("  v6:\n"
                 "    router_advertisements: true\n"
                 "    subnets:\n"
                 f"      - {{ network: \"{V6_PREFIX}/64\", "
                 f"range: [\"{V6_PREFIX}100\", \"{V6_PREFIX}1ff\"] }}\n")
    elif not quiet_ra:
        text += "  v6: { quiet_ra: off }\n"
    path = work / "kindling.yaml"
    path.write_text(text)
    return path


def dnsmasq_v6_argv(work: Path, root: Path) -> list[str]:
    """dnsmasq for the IPv6-only boots: the same DHCPv4 setup, plus DHCPv6 on a range of the
    prefix with its own RAs (M set, A clear for a DHCPv6 range) and, by --ra-param, router
    lifetime 0 (not the default router, like Kindling's); option 59 names boot.ipxe
    for clients sending a user class (option 15: iPXE), ipxe.efi for the others."""
    argv = dnsmasq_argv(work, root)
    cut = argv.index("--enable-ra")
    return argv[:cut] + [
        "--enable-ra", "--ra-param=eth0,0,0",
        f"--dhcp-range={V6_PREFIX}100,{V6_PREFIX}1ff,64,1h",
        "--dhcp-match=set:ipxe6,option6:15",
        f"--dhcp-option=tag:ipxe6,option6:bootfile-url,tftp://[{V6_PREFIX}1]/boot.ipxe",
        f"--dhcp-option=tag:!ipxe6,option6:bootfile-url,tftp://[{V6_PREFIX}1]/ipxe.efi",
    ]


def dnsmasq_argv(work: Path, root: Path) -> list[str]:
    return [
        "dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--no-hosts", "--no-resolv", "--port=0",
        "--bind-interfaces", "--interface=eth0", "--no-ping", "--user=root", "--log-facility=-",
        f"--dhcp-leasefile={work / 'leases'}", f"--pid-file={work / 'pid'}",
        f"--dhcp-range={NET}.100,{NET}.200,255.255.255.0,1h",
        "--enable-tftp", f"--tftp-root={root}",
        "--dhcp-match=set:ipxe,175",
        "--dhcp-match=set:efi64,option:client-arch,7",
        "--dhcp-boot=tag:!ipxe,tag:efi64,ipxe.efi",
        "--dhcp-boot=tag:!ipxe,tag:!efi64,undionly.kpxe",
        "--dhcp-boot=tag:ipxe,boot.ipxe",
        # Router advertisements as dnsmasq users turn them on: for the segment's IPv6 prefix,
        # no DHCPv6 (ra-only).
        "--enable-ra", f"--dhcp-range={V6_PREFIX},ra-only,64",
    ]


def start_server(name: str, lab: BootLab, kindling: Path, work: Path, root: Path,
                 v6: bool = False) -> list[Process]:
    """The server, ready."""
    work.mkdir(parents=True, exist_ok=True)
    if name == "dnsmasq":
        argv = dnsmasq_v6_argv(work, root) if v6 else dnsmasq_argv(work, root)
        server = Process(in_ns(lab.srv_ns, argv), work / "server.log")
        server.wait_for(["started, version", "TFTP root"], 20)
        return [server]
    config = kindling_config(work, root, quiet_ra=name != "kindling-quiet-ra-off", v6=v6)
    server = Process(in_ns(lab.srv_ns, [str(kindling), "serve", "--config", str(config)]),
                     work / "server.log")
    needles = ["dhcp listening", "kindling ready"]
    if v6:
        needles += ["dhcpv6 listening", "advertising as the DHCPv6 segment's router"]
    elif name != "kindling-quiet-ra-off":
        needles.append("router advertisements on interfaces=[\"eth0\"] quiet=true")
    try:
        server.wait_for(needles, 30)
    except BaseException:
        server.stop()
        raise
    return [server]


def qemu_argv(firmware: str, lab: BootLab, work: Path) -> list[str]:
    serial = work / "serial.log"
    argv = ["qemu-system-x86_64", "-accel", "tcg", "-nodefaults", "-display", "none", "-m", "256",
            "-no-reboot", "-serial", f"file:{serial}",
            "-netdev", f"tap,id=n0,ifname={lab.tap_for(firmware)},script=no,downscript=no"]
    if firmware.startswith("seabios-ipxe"):
        sercon = work / "sercon-port"
        sercon.write_bytes(bytes([0xf8, 0x03]))  # COM1 for SeaBIOS's console mirror
        argv += ["-device", f"e1000,netdev=n0,mac={VM_MAC},romfile={IPXE_ROM}",
                 "-fw_cfg", f"name=etc/sercon-port,file={sercon}", "-boot", "n"]
    else:
        vars_copy = work / "OVMF_VARS.fd"
        shutil.copy(OVMF_VARS, vars_copy)
        argv += ["-machine", "q35",
                 "-drive", f"if=pflash,format=raw,readonly=on,file={OVMF_CODE}",
                 "-drive", f"if=pflash,format=raw,file={vars_copy}",
                 # No option ROM: OVMF's own PXE client asks first, as on real UEFI machines.
                 "-device", f"virtio-net-pci,netdev=n0,mac={VM_MAC},romfile="]
        if firmware in V6_FIRMWARES:
            # Straight to PXE over IPv6, as a machine set up for an IPv6-only network is.
            argv += ["-fw_cfg", "name=opt/org.tianocore/IPv4PXESupport,string=n"]
    return in_ns(lab.br_ns, argv)


def boot_once(firmware: str, lab: BootLab, work: Path, marker: str) -> tuple[float | None, str]:
    work.mkdir(parents=True, exist_ok=True)
    serial = work / "serial.log"
    serial.write_text("")
    started = time.monotonic()
    vm = Process(qemu_argv(firmware, lab, work), work / "qemu.log")
    try:
        while time.monotonic() - started < BOOT_TIMEOUT:
            if marker in serial.read_text(errors="replace"):
                return time.monotonic() - started, ""
            if vm.proc.poll() is not None:
                return None, f"QEMU exited: {vm.text()[-500:]}"
            time.sleep(0.02)
        return None, f"no marker within {BOOT_TIMEOUT:.0f}s"
    finally:
        vm.stop()


def _terminate(_signum: int, _frame: object) -> None:
    raise SystemExit(143)


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def parse_args(argv: list[str], suites: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="bench/run --suite boot", description=__doc__.split("\n\n")[0])
    ap.add_argument("--suite", choices=suites, default="boot")
    ap.add_argument("--reps", type=int, default=3, help="repetitions (default 3; medians need 3)")
    ap.add_argument("--quick", action="store_true",
                    help="one repetition, SeaBIOS only (IPv4 and IPv6), written to bench/.work/boot-quick.md")
    ap.add_argument("--firmware", choices=FIRMWARES, action="append",
                    help="only this firmware (repeatable; default both)")
    ap.add_argument("--kindling", type=Path,
                    help="the kindling binary (default target/release/kindling, built if missing)")
    ap.add_argument("--out", type=Path, help="report file (default docs/benchmarks.md)")
    return ap.parse_args(argv)


def main(argv: list[str], *, suites: list[str], log: Log,
         write_section: Callable[[Path, str, str], None], git_rev: Callable[[], str]) -> int:
    args = parse_args(argv, suites)
    if os.geteuid() != 0:
        log("the boot suite needs root (network namespaces, taps, port 67)")
        return 2
    for tool in ("qemu-system-x86_64", "dnsmasq", "ip", "nft"):
        if shutil.which(tool) is None:
            log(f"{tool} is missing: run scripts/install-test-deps")
            return 2
    for path in (IPXE_ROM, IPXE_EFI, OVMF_CODE, OVMF_VARS):
        if not Path(path).is_file():
            log(f"{path} is missing: run scripts/install-test-deps (ipxe-qemu, ipxe, ovmf)")
            return 2
    kindling = args.kindling
    if kindling is None:
        target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
        kindling = target / "release" / "kindling"
        if not kindling.is_file():
            log("cargo build --release -p kindling")
            p = subprocess.run(["cargo", "build", "--release", "-p", "kindling"], cwd=REPO)
            if p.returncode != 0:
                return 1
    firmwares = args.firmware or (["seabios-ipxe", "seabios-ipxe-v6"] if args.quick else FIRMWARES)
    reps = 1 if args.quick else args.reps
    started_at = dt.datetime.now(dt.timezone.utc)
    load_before = loadavg()
    times: dict[tuple[str, str], list[float]] = {
        (f, s): [] for f in firmwares for s in servers_for(f)}
    failures: list[str] = []
    WORK.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="boot-", dir=WORK))
    os.chmod(scratch, 0o755)
    lab = BootLab()
    # SIGTERM unwinds like Ctrl-C, so the lab is removed either way.
    signal.signal(signal.SIGTERM, _terminate)
    try:
        lab.open()
        run_no = 0
        for rep in range(reps):
            for firmware in firmwares:
                # Rotate the order every repetition so no server always goes first or last.
                servers = servers_for(firmware)
                k = (rep + FIRMWARES.index(firmware)) % len(servers)
                order = servers[k:] + servers[:k]
                for name in order:
                    run_no += 1
                    work = scratch / f"{run_no:02d}-{firmware}-{name}"
                    root = work / "root"
                    marker = write_tree(root, f"{os.getpid():x}{run_no:02d}")
                    processes = start_server(name, lab, kindling, work, root,
                                             v6=firmware in V6_FIRMWARES)
                    try:
                        time.sleep(SETTLE)
                        seconds, why = boot_once(firmware, lab, work, marker)
                    finally:
                        for process in processes:
                            process.stop()
                    if seconds is None:
                        failures.append(f"{firmware} / {name} (repetition {rep + 1}): {why}; "
                                        f"logs in {work}")
                        log(f"boot {firmware} from {name}: FAILED ({why})")
                    else:
                        times[(firmware, name)].append(seconds)
                        log(f"boot {firmware} from {name}: {seconds:.1f} s")
    finally:
        lab.close()
    elapsed = (dt.datetime.now(dt.timezone.utc) - started_at).total_seconds()
    text = render(times, firmwares, reps, failures, {
        "started": started_at.strftime("%Y-%m-%d %H:%M UTC"),
        "elapsed": elapsed,
        "load_before": load_before,
        "load_after": loadavg(),
        "rev": git_rev(),
        "kindling": str(kindling),
        "cpus": os.cpu_count(),
        "kernel": platform.release(),
        "qemu": first_line(["qemu-system-x86_64", "--version"]),
        "dnsmasq": first_line(["dnsmasq", "--version"]),
        "quick": args.quick,
    })
    if args.quick and args.out is None:
        out = WORK / "boot-quick.md"
        out.write_text(text + "\n")
    else:
        out = args.out or REPO / "docs" / "benchmarks.md"
        write_section(out, "boot", text)
    log(f"wrote {out}")
    if not failures:
        shutil.rmtree(scratch, ignore_errors=True)
    return 1 if failures else 0


def first_line(argv: list[str]) -> str:
    try:
        return run(argv).stdout.strip().splitlines()[0]
    except (OSError, IndexError, subprocess.SubprocessError):
        return "?"


def render(times: dict[tuple[str, str], list[float]], firmwares: list[str], reps: int,
           failures: list[str], meta: dict) -> str:
    def med(xs: list[float]) -> float | None:
        return statistics.median(xs) if xs else None

    def cell(xs: list[float]) -> str:
        if not xs:
            return "—"
        return f"{med(xs):.1f} s ({min(xs):.1f}–{max(xs):.1f}, n={len(xs)})"

    L: list[str] = []
    w = L.append
    cmd = "bench/run --suite boot" + (" --quick" if meta["quick"] else "")
    w("## Boot time: power-on to the boot script")
    w("")
    w(f"Generated by `{cmd}` — do not edit by hand; rerun it. See bench/README.md.")
    w("")
    w(f"Run {meta['started']}, {meta['elapsed'] / 60:.1f} min, commit {meta['rev']}, "
      f"{meta['cpus']} CPUs, kernel {meta['kernel']}, {meta['qemu']}, {meta['dnsmasq']}. "
      f"Load average before / after: {meta['load_before']} / {meta['load_after']}.")
    w("")
    w("QEMU under TCG on the namespace lab (a bridge, the server on it, the VM on a tap); the time "
      "is from QEMU's start to the marker the served iPXE script prints on the serial console. "
      "Every server is ready and has run for 4 s before the VM starts; ping checks are off for "
      "both (`--no-ping`, `ping_check: false`) so that only the protocols differ. Servers are "
      f"interleaved and their order rotated every repetition; {reps} repetition(s). Cells: median "
      "(min–max, number of boots).")
    w("")
    def verdict(k: float | None, k2: float | None, d: float | None) -> str:
        if k and d and k2:
            # Within the A/A spread counts as no slower: two identical servers differ by that much.
            return "met" if k <= d + abs(k - k2) else "NOT met"
        return "not measured"

    v4 = [f for f in firmwares if f in V4_FIRMWARES]
    v6 = [f for f in firmwares if f in V6_FIRMWARES]
    if v4:
        w("| server | " + " | ".join(FIRMWARE_LABELS[f] for f in v4) + " |")
        w("|---|" + "---|" * len(v4))
        for name in SERVERS:
            w(f"| {SERVER_LABELS[name]} | " + " | ".join(cell(times[(f, name)]) for f in v4) + " |")
        w("")
        w("| firmware | Kindling / dnsmasq | A/A spread (Kindling vs Kindling again) | quiet_ra: off / auto | target: Kindling no slower than dnsmasq |")
        w("|---|---|---|---|---|")
        for f in v4:
            k, k2, off, d = (med(times[(f, s)]) for s in SERVERS)
            ratio = f"{k / d:.2f}" if k and d else "—"
            spread = f"{abs(k - k2) / k * 100:.0f}%" if k and k2 else "—"
            gain = f"{off / k:.2f}×" if k and off else "—"
            w(f"| {FIRMWARE_LABELS[f]} | {ratio} | {spread} | {gain} | {verdict(k, k2, d)} |")
        w("")
    if v6:
        w("### IPv6 only")
        w("")
        w("The same machines on a tap whose IPv4 and ARP frames an nftables netdev filter drops, so "
          "only IPv6 can boot them: a router advertisement with the M flag (prefix on-link, A clear, "
          "router lifetime 0), DHCPv6 with option 59 (`tftp://[fd00:99::1]/ipxe.efi` for OVMF's "
          "PXE client, `.../boot.ipxe` for iPXE, which sends user class `iPXE`), TFTP over IPv6. "
          "OVMF has IPv4 PXE turned off (fw_cfg `opt/org.tianocore/IPv4PXESupport=n`). Kindling "
          "serves DHCPv6, TFTP and its own RAs (`dhcp.v6.router_advertisements: true`: M, O, A "
          "clear, router lifetime 0); dnsmasq serves all three itself (`--enable-ra --ra-param=eth0,0,0`, a DHCPv6 "
          "`--dhcp-range`, `--dhcp-option=option6:bootfile-url` tagged on option 15).")
        w("")
        w("| server | " + " | ".join(FIRMWARE_LABELS[f] for f in v6) + " |")
        w("|---|" + "---|" * len(v6))
        for name in V6_SERVERS:
            w(f"| {V6_SERVER_LABELS[name]} | " + " | ".join(cell(times[(f, name)]) for f in v6) + " |")
        w("")
        w("| firmware | Kindling / dnsmasq | A/A spread (Kindling vs Kindling again) | target: Kindling no slower than dnsmasq |")
        w("|---|---|---|---|")
        for f in v6:
            k, k2, d = (med(times[(f, s)]) for s in V6_SERVERS)
            ratio = f"{k / d:.2f}" if k and d else "—"
            spread = f"{abs(k - k2) / k * 100:.0f}%" if k and k2 else "—"
            w(f"| {FIRMWARE_LABELS[f]} | {ratio} | {spread} | {verdict(k, k2, d)} |")
        w("")
    if failures:
        w("Failed boots (not in the medians):")
        w("")
        for failure in failures:
            w(f"- {failure}")
        w("")
    if v4:
        w("Why Kindling with quiet_ra: off is slow: iPXE configures IPv6 beside DHCPv4 and waits for "
          "a router advertisement that nobody sends on this IPv6-less segment. With `quiet_ra: "
          "auto` Kindling answers iPXE's router solicitation with an RA that configures nothing; "
          "dnsmasq with `--enable-ra` advertises the segment's prefix.")
    if v6:
        w("")
        w("Where the IPv6-only time goes (packet captures on the lab): the DHCPv6 exchanges take "
          "milliseconds. OVMF spends about 10 s after its REPLY looking for a route to the boot "
          "server (`PXEBC_IP6_ROUTE_TABLE_TIMEOUT`; an on-link prefix does not count, only a "
          "router with a lifetime above 0 would end it early), and iPXE, Debian's `ipxe.efi` as "
          "well as the ROM, waits about 14–17 s for its DHCPv4 attempt to time out before it "
          "fetches the script. Kindling's ADVERTISE carries preference 255, so EDK2 requests at "
          "once; dnsmasq's says 0 and EDK2 waits out its first retransmission time (about 4 s "
          "measured) before it requests.")
    return "\n".join(L)
