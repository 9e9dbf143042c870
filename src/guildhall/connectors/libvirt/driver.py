"""The ``libvirt`` hosting driver: each server is a libvirt domain (a virtual machine).

A server is defined from its plan: ``vcpus``, ``memory_mb``, a disk cloned
from the plan's base image in ``storage_pool`` (and grown to ``disk_gb``), one
interface on ``network``; the domain's name is the server's public id, which
is also its ``runtime_ref``. Power: start is ``create``, stop and shutdown are
an ACPI shutdown followed by ``destroy`` after the grace period, restart is
``reboot``, kill is ``destroy``; deleting destroys, undefines and removes the
volume. libvirt judges the transitions: starting a running domain is refused
by libvirt, in its words, and that refusal is a 409 (``DriverError`` with
``conflict``).

The state shown comes from libvirt: read for every domain when the driver
opens (so a machine that changed while Guildhall was down shows its true
state), then kept current by lifecycle events, never by a call per request.
Events need libvirt's event loop integration; ``libvirtaio`` binds it to one
asyncio loop for the life of the process, so it runs on a loop of its own in
a daemon thread (started once per process). Every libvirt call blocks and is
made on that thread (``on_libvirt_thread``), never on Guildhall's loop;
callbacks only store the state.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable
from typing import Any, TypeVar

from guildhall.config import ConfigError, LibvirtSettings
from guildhall.core.hosting.driver import DriverError, ServerSpec

# The optional extra's modules, imported by ``require_binding`` when a plan needs them.
libvirt: Any = None
libvirtaio: Any = None

INSTALL = (
    "The libvirt hosting driver needs libvirt's Python binding: install the system library's "
    "development package (Debian: apt install libvirt-dev pkg-config), then "
    "pip install 'guildhall[libvirt]'."
)
POLL_SECONDS = 0.05
T = TypeVar("T")

# A domain's state as SkyPANEL sees it: only a running (or paused) machine is running.
_RUNNING_STATES = frozenset({1, 2, 3, 7})  # RUNNING, BLOCKED, PAUSED, PMSUSPENDED
# Errors that mean "not in this state": qemu says OPERATION_INVALID, the test driver
# (and some others) an internal error with the reason ("domain 'x' not running").
_CONFLICT_CODES = frozenset({1, 55})  # VIR_ERR_INTERNAL_ERROR, VIR_ERR_OPERATION_INVALID


def require_binding() -> None:
    """Import the optional extra, or stop, in one sentence, saying what to install."""
    global libvirt, libvirtaio
    try:
        import libvirt as binding
        import libvirtaio as integration
    except ImportError:
        raise ConfigError(INSTALL) from None
    libvirt, libvirtaio = binding, integration
    # libvirt prints every error on stderr by default; ours become DriverErrors instead.
    binding.registerErrorHandler(lambda _context, _error: None, None)


_events_started = threading.Lock()
_events_loop: asyncio.AbstractEventLoop | None = None


def _libvirt_loop() -> asyncio.AbstractEventLoop:
    """The loop libvirt's asyncio integration runs on, in its own thread (once per process)."""
    global _events_loop
    with _events_started:
        if _events_loop is None:
            ready = threading.Event()
            loop = asyncio.new_event_loop()

            def run() -> None:
                asyncio.set_event_loop(loop)
                libvirtaio.virEventRegisterAsyncIOImpl(loop=loop)
                ready.set()
                loop.run_forever()

            threading.Thread(target=run, name="libvirt", daemon=True).start()
            ready.wait()
            _events_loop = loop
        return _events_loop


async def on_libvirt_thread(work: Callable[[], T]) -> T:
    """Run a (blocking) libvirt call on libvirt's own thread, off Guildhall's loop.

    On that thread only: libvirtaio schedules its timers and watches with the
    loop's own, not thread-safe, calls, so a call made from any other thread
    (one that queues an event, say) would leave the event undelivered.
    """

    async def call() -> T:
        return work()

    future = asyncio.run_coroutine_threadsafe(call(), _libvirt_loop())
    return await asyncio.wrap_future(future)


def _domain_xml(spec: ServerSpec, volume_path: str, volume_format: str, network: str) -> str:
    domain = ElementTree.Element("domain", type="kvm")
    ElementTree.SubElement(domain, "name").text = spec.public_id
    ElementTree.SubElement(domain, "memory", unit="MiB").text = str(spec.memory_mb)
    ElementTree.SubElement(domain, "vcpu").text = str(spec.vcpus)
    os_ = ElementTree.SubElement(domain, "os")
    ElementTree.SubElement(os_, "type", arch="x86_64").text = "hvm"
    ElementTree.SubElement(os_, "boot", dev="hd")
    features = ElementTree.SubElement(domain, "features")
    ElementTree.SubElement(features, "acpi")
    devices = ElementTree.SubElement(domain, "devices")
    disk = ElementTree.SubElement(devices, "disk", type="file", device="disk")
    ElementTree.SubElement(disk, "driver", name="qemu", type=volume_format)
    ElementTree.SubElement(disk, "source", file=volume_path)
    ElementTree.SubElement(disk, "target", dev="vda", bus="virtio")
    interface = ElementTree.SubElement(devices, "interface", type="network")
    ElementTree.SubElement(interface, "source", network=network)
    ElementTree.SubElement(interface, "model", type="virtio")
    return ElementTree.tostring(domain, encoding="unicode")


def _clone_xml(name: str, capacity_bytes: int, volume_format: str) -> str:
    volume = ElementTree.Element("volume")
    ElementTree.SubElement(volume, "name").text = name
    ElementTree.SubElement(volume, "capacity", unit="bytes").text = str(capacity_bytes)
    target = ElementTree.SubElement(volume, "target")
    ElementTree.SubElement(target, "format", type=volume_format)
    return ElementTree.tostring(volume, encoding="unicode")


class LibvirtDriver:
    name = "libvirt"
    judges_transitions = True
    polled = False  # lifecycle events keep the states current

    def __init__(self, settings: LibvirtSettings) -> None:
        require_binding()
        self.settings = settings
        self._connection: Any = None
        self._states: dict[str, int] = {}  # domain name -> libvirt state, from events
        self._callback: int | None = None
        self._open_lock = asyncio.Lock()

    # ---- the connection ---------------------------------------------------------

    async def open(self) -> None:
        async with self._open_lock:
            if self._connection is not None:
                return
            try:
                connection = await on_libvirt_thread(lambda: libvirt.open(self.settings.uri))
            except libvirt.libvirtError as exc:
                raise DriverError(
                    f"libvirt at {self.settings.uri} cannot be reached: {exc.get_error_message()}",
                    unavailable=True,
                ) from None
            self._callback = await on_libvirt_thread(
                lambda: connection.domainEventRegisterAny(
                    None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, self._on_lifecycle, None
                )
            )
            await on_libvirt_thread(lambda: connection.registerCloseCallback(self._on_close, None))
            self._connection = connection
            await on_libvirt_thread(self._read_all_states)

    def _on_close(self, connection: Any, _reason: int, _: Any) -> None:
        """libvirtd went away (restarted, say): the next call connects again and re-reads
        every state, and until then no frozen state is taken for the truth."""
        if self._connection is connection:
            self._connection = None

    def _on_lifecycle(self, _conn: Any, domain: Any, _event: int, _detail: int, _: Any) -> None:
        """On libvirt's event thread: remember the domain's state as it is now."""
        with contextlib.suppress(libvirt.libvirtError):
            self._states[domain.name()] = domain.state()[0]

    def _read_all_states(self) -> None:
        for domain in self._connection.listAllDomains():
            self._states[domain.name()] = domain.state()[0]

    async def refresh(self, runtime_refs: list[str]) -> None:
        """Read every domain's state again (``open`` already did; events keep it since)."""
        await self._call(self._read_all_states, "the machines' states cannot be read")

    async def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        callback = self._callback

        def let_go() -> None:
            with contextlib.suppress(libvirt.libvirtError):
                if callback is not None:
                    connection.domainEventDeregisterAny(callback)
                connection.close()

        await on_libvirt_thread(let_go)

    async def _call(self, work: Callable[[], T], what: str) -> T:
        """``work`` on libvirt's thread; libvirt's errors as ``DriverError``."""
        if self._connection is None:
            await self.open()
        try:
            return await on_libvirt_thread(work)
        except libvirt.libvirtError as exc:
            code = exc.get_error_code()
            message = exc.get_error_message() or str(exc)
            if not await self._alive():
                self._connection = None  # the next call connects again
                raise DriverError(
                    f"{what}: libvirt at {self.settings.uri} is not reachable ({message})",
                    unavailable=True,
                ) from None
            raise DriverError(
                f"{what}: {message}",
                conflict=code in _CONFLICT_CODES,
                unavailable=code in (libvirt.VIR_ERR_NO_CONNECT, libvirt.VIR_ERR_SYSTEM_ERROR),
            ) from None

    async def _alive(self) -> bool:
        connection = self._connection
        if connection is None:
            return False
        try:
            return bool(await on_libvirt_thread(connection.isAlive))
        except libvirt.libvirtError:
            return False

    def _domain(self, name: str) -> Any:
        return self._connection.lookupByName(name)

    def _note(self, name: str) -> None:
        """Record the state now, without waiting for the event (which says the same)."""
        with contextlib.suppress(libvirt.libvirtError):
            self._states[name] = self._domain(name).state()[0]

    # ---- what the core asks ------------------------------------------------------

    def ip_address(self, spec: ServerSpec) -> str:
        return ""  # given by the network's DHCP once the machine boots

    def is_running(self, runtime_ref: str | None) -> bool:
        return runtime_ref is not None and self._states.get(runtime_ref) in _RUNNING_STATES

    async def provision(self, spec: ServerSpec) -> str:
        base = self.settings.base_images.get(spec.image)
        if base is None:
            raise DriverError(f"image {spec.image!r} is not under [hosting.libvirt] base_images")

        def define() -> str:
            pool = self._connection.storagePoolLookupByName(self.settings.storage_pool)
            source = pool.storageVolLookupByName(base)
            volume_format = _volume_format(source.XMLDesc(0))
            capacity = max(spec.disk_gb * 1024**3, source.info()[1])
            volume = pool.createXMLFrom(
                _clone_xml(f"{spec.public_id}.{volume_format}", capacity, volume_format),
                source,
                0,
            )
            try:
                xml = _domain_xml(spec, volume.path(), volume_format, self.settings.network)
                domain = self._connection.defineXML(xml)
            except libvirt.libvirtError:
                volume.delete(0)
                raise
            name: str = domain.name()
            self._states[name] = domain.state()[0]
            return name

        return await self._call(define, "the machine could not be defined")

    async def start(self, spec: ServerSpec, runtime_ref: str | None) -> str:
        name = runtime_ref or spec.public_id

        def create() -> str:
            self._domain(name).create()
            self._note(name)
            return name

        return await self._call(create, "start refused")

    async def stop(self, runtime_ref: str, grace: float) -> None:
        await self.shutdown(runtime_ref, grace)

    async def shutdown(self, runtime_ref: str, grace: float) -> None:
        """ACPI shutdown, then destroy if the guest has not stopped within ``grace``."""
        await self._call(lambda: self._domain(runtime_ref).shutdown(), "shutdown refused")
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            state = await self._call(lambda: self._domain(runtime_ref).state()[0], "state")
            self._states[runtime_ref] = state
            if state not in _RUNNING_STATES:
                return
            await asyncio.sleep(POLL_SECONDS)
        await self.kill(runtime_ref)

    async def kill(self, runtime_ref: str) -> None:
        def destroy() -> None:
            self._domain(runtime_ref).destroy()
            self._note(runtime_ref)

        await self._call(destroy, "kill refused")

    async def restart(self, spec: ServerSpec, runtime_ref: str, grace: float) -> str:
        def reboot() -> str:
            self._domain(runtime_ref).reboot(0)
            self._note(runtime_ref)
            return runtime_ref

        return await self._call(reboot, "restart refused")

    async def remove(self, runtime_ref: str | None, public_id: str = "") -> None:
        # A machine whose creation was interrupted has no ref yet, but has its name.
        runtime_ref = runtime_ref or public_id or None
        if runtime_ref is None:
            return

        def undefine() -> None:
            try:
                domain = self._domain(runtime_ref)
            except libvirt.libvirtError as exc:
                if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                    return  # already gone
                raise
            volumes = _disk_paths(domain.XMLDesc(0))
            if domain.isActive():
                domain.destroy()
            domain.undefine()
            for path in volumes:
                with contextlib.suppress(libvirt.libvirtError):
                    self._connection.storageVolLookupByPath(path).delete(0)
            self._states.pop(runtime_ref, None)

        await self._call(undefine, "the machine could not be removed")


def _volume_format(volume_xml: str) -> str:
    found = ElementTree.fromstring(volume_xml).find("./target/format")  # noqa: S314 (libvirt's)  # noqa: S314 (libvirt's own)
    return (found.get("type") if found is not None else None) or "raw"


def _disk_paths(domain_xml: str) -> list[str]:
    root = ElementTree.fromstring(domain_xml)  # noqa: S314 (libvirt's own XML)
    return [
        source.get("file", "")
        for source in root.findall("./devices/disk/source")
        if source.get("file")
    ]
