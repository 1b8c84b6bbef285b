#!/usr/bin/python3
"""Run Debian's dkimverify (python3-dkim) unchanged, with its DNS resolver
pointed at the test's loopback DNS server instead of /etc/resolv.conf.

Usage: dkimverify-loopback.py DNS_HOST DNS_PORT [dkimverify arguments] < message
(DKIMVERIFY in the environment: the dkimverify script, default /usr/bin/dkimverify)

dkimverify looks up the signer's key itself, through dnspython's default
resolver; only that resolver is replaced here, so the verification is
python3-dkim's own code and the key is whatever the DNS server publishes.
"""
import os
import runpy
import sys

import dns.resolver

DKIMVERIFY = os.environ.get("DKIMVERIFY", "/usr/bin/dkimverify")

resolver = dns.resolver.Resolver(configure=False)
resolver.nameservers = [sys.argv[1]]
resolver.port = int(sys.argv[2])
resolver.timeout = resolver.lifetime = 5
dns.resolver.default_resolver = resolver

sys.argv = [DKIMVERIFY] + sys.argv[3:]
runpy.run_path(DKIMVERIFY, run_name="__main__")
