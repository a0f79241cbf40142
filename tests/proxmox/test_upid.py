import pytest

from apps.proxmox import is_upid, parse_upid


def test_parse_upid_decodes_every_field():
    upid = parse_upid("UPID:pve1:0003A1F2:01B3C4D5:67A0B1C2:qmstart:100:root@pam:")
    assert (upid.node, upid.type, upid.id, upid.user) == ("pve1", "qmstart", "100", "root@pam")
    assert (upid.pid, upid.pstart, upid.starttime) == (0x3A1F2, 0x01B3C4D5, 0x67A0B1C2)
    assert upid.tokenid is None


def test_parse_upid_accepts_token_user_empty_id_lowercase_hex_and_9_digit_pstart():
    upid = parse_upid("UPID:node-2:0003a1f2:101b3c4d5:67a0b1c2:vzdump::admin@pve!ci:")
    assert upid.id == "" and upid.type == "vzdump" and upid.node == "node-2"
    assert upid.pstart == 0x101B3C4D5
    assert upid.user == "admin@pve!ci" and upid.tokenid == "ci"


@pytest.mark.parametrize("bad", [
    "",
    "UPID:pve1:0003A1F2:01B3C4D5:67A0B1C2:qmstart:100:root@pam",  # trailing colon is mandatory
    "UPID:pve1:3A1F2:01B3C4D5:67A0B1C2:qmstart:100:root@pam:",  # pid must be 8 hex digits
    "UPID:-pve1:0003A1F2:01B3C4D5:67A0B1C2:qmstart:100:root@pam:",  # node name starts with a letter/digit
    "UPID:pve1:0003A1F2:01B3C4D5:67A0B1C2:qm/start:100:root@pam:",
    "TASK:pve1:0003A1F2:01B3C4D5:67A0B1C2:qmstart:100:root@pam:",
])
def test_parse_upid_rejects_malformed_values_naming_them(bad):
    with pytest.raises(ValueError, match="unable to parse worker upid"):
        parse_upid(bad)
    assert not is_upid(bad)
