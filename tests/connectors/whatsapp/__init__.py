"""The WhatsApp connector: against a fake of neonize's client, and the real library offline."""

from guildhall.connectors.whatsapp import load_neonize

load_neonize()  # before any test module imports neonize: its import leaks a pipe
