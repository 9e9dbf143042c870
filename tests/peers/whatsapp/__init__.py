"""An adapter-level fake of neonize's asyncio client, replaying real neonize event objects.

WhatsApp cannot be reached from a test, and its protocol (noise handshake,
signal sessions) is not one to fake on a socket, so the fake stands in for
neonize's ``NewAClient`` itself: the connector drives it exactly as it
drives the library, and every event it receives is built from neonize's own
protobuf classes and decoded the way neonize decodes them.

neonize is loaded through ``load_neonize`` first: its import leaks a pipe
(a ResourceWarning), which this suite turns into an error otherwise.
"""

from guildhall.connectors.whatsapp import load_neonize

load_neonize()
