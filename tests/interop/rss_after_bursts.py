"""RSS of a switchyard binary before, during and after bursts (issue 21, item 7).

Usage: python3 tests/interop/rss_after_bursts.py target/release/switchyard

Starts the router on 2 shards (RawSocket + JSON on 127.0.0.1:0), sends 8 HELLOs of 10 MB,
then 4 sessions x 10,000 SUBSCRIBEs, closes everything and prints VmRSS at each step and
5 s / 11 s later (the malloc-trim thread checks every 5 s). A measurement, not a test.
"""
import socket, struct, subprocess, sys, time, json, os, re
binary = sys.argv[1]
p = subprocess.Popen([binary, "--no-ws", "--rs", "127.0.0.1:0", "--shards", "2", "--metrics", "127.0.0.1:0"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
rs = None
for line in p.stdout:
    line = line.strip()
    if line.startswith("listening rs://"): rs = line.split("//")[1]
    if line == "ready": break
host, port = rs.split(":"); port = int(port)
def rss():
    for l in open(f"/proc/{p.pid}/status"):
        if l.startswith("VmRSS"): return int(l.split()[1]) // 1024
def conn():
    s = socket.create_connection((host, port)); s.settimeout(10)
    s.sendall(bytes([0x7f, 0xf1, 0, 0])); s.recv(4); return s
def send(s, msg):
    b = json.dumps(msg).encode(); s.sendall(struct.pack(">I", len(b)) + b)
def recv(s):
    h = b""
    while len(h) < 4: h += s.recv(4 - len(h))
    n = struct.unpack(">I", h)[0] & 0xffffff; b = b""
    while len(b) < n: b += s.recv(n - len(b))
    return json.loads(b)
print("start", rss(), "MB")
# burst 1: 8 connections each sending a 10 MB HELLO
big = "x" * (10 * 1024 * 1024)
socks = []
for i in range(8):
    s = conn(); send(s, [1, "realm1", {"roles": {"subscriber": {}}, "authid": big}]); socks.append(s)
time.sleep(1)
print("after 10MB HELLOs", rss(), "MB")
for s in socks: s.close()
# burst 2: 10k SUBSCRIBEs on 4 sessions
socks = []
for k in range(4):
    s = conn(); send(s, [1, "realm1", {"roles": {"subscriber": {}}}]); recv(s)
    payload = b"".join((lambda b: struct.pack(">I", len(b)) + b)(json.dumps([32, i + 1, {}, f"com.example.topic{k}.{i}"]).encode()) for i in range(10000))
    s.sendall(payload)
    for i in range(10000): recv(s)
    socks.append(s)
print("after 4x10k SUBSCRIBE", rss(), "MB")
for s in socks: s.close()
time.sleep(2)
print("idle after bursts", rss(), "MB")
time.sleep(3)
print("idle +5s", rss(), "MB")
time.sleep(0.5)
time.sleep(6); print("idle +11s", rss(), "MB")
p.terminate(); p.wait()
