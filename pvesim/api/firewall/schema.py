"""Firewall parameter declarations: options per level, rule fields, macros, protocols and services."""

from __future__ import annotations


from ...params import P, PropString


LOG_LEVELS = ["emerg", "alert", "crit", "err", "warning", "notice", "info", "debug", "nolog"]
POLICIES = ["ACCEPT", "REJECT", "DROP"]
NAME = dict(min_length=2, max_length=64, pattern=r"[A-Za-z][A-Za-z0-9\-\_]+")
GROUP = P.string(optional=False, min_length=2, max_length=18, pattern=r"[A-Za-z][A-Za-z0-9\-\_]+")
POS = P.integer(minimum=0)
DIGEST = P.digest()

# A realistic subset of /usr/share/perl5/PVE/Firewall.pm's macros: name -> description.
MACROS = {
    "Amanda": "Amanda Backup", "Auth": "Auth (identd) traffic", "BGP": "Border Gateway Protocol traffic",
    "BitTorrent": "BitTorrent traffic for BitTorrent 3.1 and earlier", "Ceph": "Ceph Storage Cluster traffic (Ceph Monitors, OSD & MDS Daemons)",
    "CVS": "Concurrent Versions System pserver traffic", "DHCPfwd": "Forwarded DHCP traffic",
    "DHCPv6": "DHCPv6 traffic", "DNS": "Domain Name System traffic (upd and tcp)", "FTP": "File Transfer Protocol",
    "Git": "Git distributed revision control traffic", "GRE": "Generic Routing Encapsulation tunneling protocol",
    "HKP": "OpenPGP HTTP key server protocol traffic", "HTTP": "Hypertext Transfer Protocol (WWW)",
    "HTTPS": "Hypertext Transfer Protocol (WWW) over SSL", "ICMPV6": "ICMPv6 traffic (required for IPv6)",
    "IMAP": "Internet Message Access Protocol", "IMAPS": "Internet Message Access Protocol over SSL",
    "IPsec": "IPsec traffic", "IPsecah": "IPsec authentication (AH) traffic", "IPsecnat": "IPsec traffic and Nat-Traversal",
    "IRC": "Internet Relay Chat traffic", "Jetdirect": "HP Jetdirect printing", "L2TP": "Layer 2 Tunneling Protocol traffic",
    "LDAP": "Lightweight Directory Access Protocol traffic", "LDAPS": "Secure Lightweight Directory Access Protocol traffic",
    "MDNS": "Multicast DNS", "MSSQL": "Microsoft SQL Server", "Mail": "Mail traffic (SMTP, SMTPS, Submission)",
    "Munin": "Munin networked resource monitoring traffic", "MySQL": "MySQL server", "NNTP": "NNTP traffic (Usenet).",
    "NTP": "Network Time Protocol (ntpd)", "NeighborDiscovery": "IPv6 neighbor solicitation, neighbor and router advertisement",
    "OSPF": "OSPF multicast traffic", "OpenVPN": "OpenVPN traffic", "PMG": "Proxmox Mail Gateway web interface",
    "POP3": "POP3 traffic", "POP3S": "Encrypted POP3 traffic", "PPtP": "Point-to-Point Tunneling Protocol",
    "Ping": "ICMP echo request", "PostgreSQL": "PostgreSQL server", "Printer": "Line Printer protocol printing",
    "RDP": "Microsoft Remote Desktop Protocol traffic", "RIP": "Routing Information Protocol (bidirectional)",
    "Rsync": "Rsync server", "SMB": "Microsoft SMB traffic", "SMTP": "Simple Mail Transfer Protocol",
    "SMTPS": "Encrypted Simple Mail Transfer Protocol", "SNMP": "Simple Network Management Protocol",
    "SPAMD": "Spam Assassin SPAMD traffic", "SSH": "Secure shell traffic", "SVN": "Subversion server (svnserve)",
    "Squid": "Squid web proxy traffic", "Submission": "Mail message submission traffic", "Syslog": "Syslog protocol (RFC 5424) traffic",
    "TFTP": "Trivial File Transfer Protocol traffic", "Telnet": "Telnet traffic", "Time": "RFC 868 Time protocol",
    "Trcrt": "Traceroute (for up to 30 hops) traffic", "VNC": "VNC traffic for VNC display's 0 - 99",
    "Web": "WWW traffic (HTTP and HTTPS)", "Webmin": "Webmin traffic", "Whois": "Whois (nicname, RFC 3912) traffic",
}
PROTOCOLS = {"tcp", "udp", "icmp", "icmpv6", "ipv6-icmp", "igmp", "gre", "esp", "ah", "sctp", "udplite", "dccp",
             "ospf", "vrrp", "ipip", "ipencap", "l2tp", "pim", "egp", "ipv6", "rsvp", "all"}
PORT_PROTOCOLS = {"tcp", "udp", "sctp", "udplite", "dccp", "6", "17", "132", "136", "33"}
SERVICES = {"ftp": 21, "ssh": 22, "telnet": 23, "smtp": 25, "domain": 53, "http": 80, "pop3": 110, "ntp": 123,
            "imap": 143, "snmp": 161, "ldap": 389, "https": 443, "submission": 587, "ldaps": 636, "imaps": 993,
            "pop3s": 995, "mysql": 3306, "postgresql": 5432, "rdp": 3389, "www": 80}
RULE_KEYS = ["type", "action", "pos", "macro", "proto", "dport", "sport", "source", "dest", "iface", "log",
             "icmp-type", "enable", "comment"]
OPTIONAL_RULE_KEYS = {"macro", "proto", "dport", "sport", "source", "dest", "iface", "log", "icmp-type", "comment"}
STALE = "detected modified configuration - file changed by other user? Try again."

LOG_RATELIMIT = PropString({"enable": P.boolean(optional=False), "burst": P.integer(minimum=0),
                            "rate": P.string(pattern=r"[1-9][0-9]*\/(second|minute|hour|day)")}, default_key="enable")
CLUSTER_OPTIONS = {
    "enable": P.integer(minimum=0, default=0), "policy_in": P.enum(POLICIES), "policy_out": P.enum(POLICIES),
    "policy_forward": P.enum(["ACCEPT", "DROP"]), "ebtables": P.boolean(default=1),
    "log_ratelimit": P.string(prop=LOG_RATELIMIT),
}
NODE_OPTIONS = {
    "enable": P.boolean(default=1), "log_level_in": P.enum(LOG_LEVELS), "log_level_out": P.enum(LOG_LEVELS),
    "log_level_forward": P.enum(LOG_LEVELS), "log_nf_conntrack": P.boolean(default=0), "ndp": P.boolean(default=1),
    "nf_conntrack_allow_invalid": P.boolean(default=0), "nf_conntrack_helpers": P.string(format="pve-fw-conntrack-helper"),
    "nf_conntrack_max": P.integer(minimum=32768), "nf_conntrack_tcp_timeout_established": P.integer(minimum=7875),
    "nf_conntrack_tcp_timeout_syn_recv": P.integer(minimum=30, maximum=60), "nftables": P.boolean(default=0),
    "nosmurfs": P.boolean(), "protection_synflood": P.boolean(default=0), "protection_synflood_burst": P.integer(),
    "protection_synflood_rate": P.integer(), "smurf_log_level": P.enum(LOG_LEVELS),
    "tcp_flags_log_level": P.enum(LOG_LEVELS), "tcpflags": P.boolean(default=0),
}
GUEST_OPTIONS = {
    "enable": P.boolean(default=0), "dhcp": P.boolean(default=0), "ipfilter": P.boolean(), "macfilter": P.boolean(default=1),
    "ndp": P.boolean(default=1), "radv": P.boolean(), "log_level_in": P.enum(LOG_LEVELS), "log_level_out": P.enum(LOG_LEVELS),
    "policy_in": P.enum(POLICIES), "policy_out": P.enum(POLICIES),
}


def _rule_params(create: bool) -> dict:
    out = {
        "type": P.enum(["in", "out", "forward", "group"], optional=not create),
        "action": P.string(optional=not create, min_length=2, max_length=20, pattern=r"[A-Za-z][A-Za-z0-9\-\_]+"),
        "pos": POS, "digest": DIGEST, "macro": P.string(max_length=128),
        "proto": P.string(format="pve-fw-protocol-spec"), "dport": P.string(format="pve-fw-dport-spec"),
        "sport": P.string(format="pve-fw-sport-spec"),
        "source": P.string(format="pve-fw-addr-spec", max_length=512), "dest": P.string(format="pve-fw-addr-spec", max_length=512),
        "iface": P.string(format="pve-iface", min_length=2, max_length=20), "log": P.enum(LOG_LEVELS),
        "icmp-type": P.string(format="pve-fw-icmp-type-spec"), "enable": P.integer(minimum=0), "comment": P.string(),
    }
    if not create:
        out["moveto"] = P.integer(minimum=0)
        out["delete"] = P.string(format="pve-configid-list")
    return out
