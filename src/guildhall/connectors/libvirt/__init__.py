"""libvirt: virtual machines for SkyPANEL's servers."""
