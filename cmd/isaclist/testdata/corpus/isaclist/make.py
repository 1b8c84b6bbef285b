#!/usr/bin/env python3
"""Writes isaclist's own corpus messages: text in the charsets the
real-world corpora (cpython/, enmime/) lack, as Python's email package (the
generator of many mail tools) writes them, and the shapes issue 12 names
(an image first, an attachment only, a forwarded message first, an RFC 2231
boundary). Run from this folder: python3 make.py"""
import base64
from email.mime.application import MIMEApplication
from email.mime.image import MIMEImage
from email.mime.message import MIMEMessage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.parser import Parser
from email import policy

TEXT = {
    "iso-2022-jp": "東京の変電所で停電が発生しました。\n詳細は添付をご覧ください。\n",
    "shift_jis": "大阪の制御システムに不審な通信があります。\n",
    "euc-kr": "서울 발전소에서 이상 징후가 발견되었습니다.\n",
    "big5": "台北變電站發現可疑流量。\n",
    "gb2312": "北京电网发现可疑流量。\n",
    "koi8-r": "На подстанции обнаружен подозрительный трафик.\n",
    "utf-16": "Verdächtiger Datenverkehr im Umspannwerk Köln.\n",
    "windows-1250": "Podejrzany ruch w podstacji w Łodzi.\n",
    "iso-8859-7": "Ύποπτη κίνηση στον υποσταθμό.\n",
}
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")


def write(name, msg):
    data = msg.as_bytes(policy=policy.SMTP.clone(linesep="\n"))
    with open(name, "wb") as f:
        f.write(data)


for cs, text in TEXT.items():
    enc = "base64" if cs == "utf-16" else None
    m = MIMEText(text, "plain", cs)
    if cs == "utf-16":
        # Python writes UTF-16 with its byte order mark (little-endian
        # here), in base64.
        del m["Content-Transfer-Encoding"]
        m.set_payload(base64.encodebytes(text.encode("utf-16")).decode())
        m["Content-Transfer-Encoding"] = "base64"
    m["Subject"] = "text in " + cs
    write("text-%s.eml" % cs, m)

alt = MIMEMultipart("alternative")
alt.attach(MIMEText(TEXT["iso-2022-jp"], "plain", "iso-2022-jp"))
alt.attach(MIMEText("<html><body><p>" + TEXT["iso-2022-jp"] + "</p></body></html>\n", "html", "iso-2022-jp"))
write("alternative-iso-2022-jp.eml", alt)

html = MIMEText("<html><body><p>" + TEXT["shift_jis"] + "</p></body></html>\n", "html", "shift_jis")
write("html-shift_jis.eml", html)

mixed = MIMEMultipart("mixed")
mixed.attach(MIMEImage(PNG, "png", name="screenshot.png"))
mixed.attach(MIMEText("The screenshot above shows the alert.\n", "plain", "us-ascii"))
write("image-first.eml", mixed)

pdf = MIMEApplication(b"%PDF-1.4\n% isaclist corpus\n%%EOF\n", "pdf", name="report.pdf")
pdf.add_header("Content-Disposition", "attachment", filename="report.pdf")
write("attachment-only-pdf.eml", pdf)

inner = Parser(policy=policy.SMTP).parsestr(
    "From: soc@vendor.example\nTo: alice@member-a.example\nSubject: Advisory VND-2026-7\n"
    "MIME-Version: 1.0\nContent-Type: text/plain; charset=us-ascii\n\nPatch the gateway firmware.\n")
fwd = MIMEMultipart("mixed")
fwd.attach(MIMEMessage(inner))
fwd.attach(MIMEText("Forwarding the vendor's advisory.\n", "plain", "us-ascii"))
write("forwarded-first.eml", fwd)

rfc2231 = ("MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary*0*=''isac-; boundary*1=2231\n\n"
           "--isac-2231\nContent-Type: text/plain; charset=us-ascii\n\nAn RFC 2231 boundary.\n"
           "--isac-2231\nContent-Type: text/plain; charset=us-ascii; name*=iso-8859-1''r%E9sum%E9.txt\n"
           "Content-Disposition: attachment; filename*=iso-8859-1''r%E9sum%E9.txt\n\nfile\n--isac-2231--\n")
with open("rfc2231-boundary.eml", "w") as f:
    f.write(rfc2231)
