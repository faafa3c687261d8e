"""Writes v5-store.db with the previous version's binary (see README.md).

    git worktree add /tmp/old 17480da && (cd /tmp/old && cargo build -p wameter --target-dir /tmp/old-target)
    python3 make-v5-store.py /tmp/old-target/debug/wameter /tmp/fx/v5.db
    sqlite3 /tmp/fx/v5.db "INSERT INTO in_flight …; PRAGMA wal_checkpoint(TRUNCATE); VACUUM;"   # README.md
"""
import hmac, hashlib, subprocess, urllib.request, re, sys, os
binary, database = sys.argv[1], sys.argv[2]
here = os.path.dirname(os.path.abspath(__file__))
secret=b"s"; token="t"
p=subprocess.Popen([binary,"serve","--listen","127.0.0.1:0","--database","sqlite://"+database],env=dict(os.environ,WAMETER_APP_SECRET="s",WAMETER_API_TOKEN=token,WAMETER_LOG="warn",WAMETER_HOME=os.path.dirname(database)+"/home"),stderr=subprocess.PIPE,text=True)
for line in p.stderr:
    m=re.match(r"wameter serve listening on (\S+)",line)
    if m: base=m.group(1); break
def post(path,body,headers):
    r=urllib.request.Request(base+path,data=body,headers=headers,method="POST")
    return urllib.request.urlopen(r).read()
root=os.path.join(here,"../../../cli/tests/data/meta/")
for line in open(root+"webhooks.ndjson"):
    if not line.strip() or line.startswith("#"): continue
    b=line.strip().encode()
    sig="sha256="+hmac.new(secret,b,hashlib.sha256).hexdigest()
    post("/webhook",b,{"X-Hub-Signature-256":sig,"Content-Type":"application/json"})
sends=b"".join(l.encode() for l in open(root+"sends.ndjson") if not l.startswith("#"))
# A plain status line naming no business, and one naming a business without a recipient.
extra=b'{"type":"status","at":"2026-02-10T13:00:00Z","id":"wamid.out-4","status":"read"}\n{"type":"status","at":"2026-02-10T13:30:00Z","id":"wamid.out-3","status":"read","business":"106540352242922"}\n'
print(post("/v1/events",sends+extra,{"Authorization":"Bearer "+token}))
urllib.request.urlopen(urllib.request.Request(base+"/v1/charges",headers={"Authorization":"Bearer "+token})).read()
p.terminate(); p.wait()
