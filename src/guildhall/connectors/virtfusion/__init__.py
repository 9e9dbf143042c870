"""VirtFusion: virtual machines for SkyPANEL's servers, over its REST API."""
