-- A schema-v2 database recorded by danmakud at commit 06ee0d1 (the last v2 release), dumped
-- with sqlite3 .dump (which leaves out user_version: the PRAGMA before COMMIT is added by
-- hand). Rooms 9999 and 288016 with labels from a config; each room's first connection was
-- reset after 6 packets and reconnected (the replay's chat cids were rejected as duplicates),
-- then stopped (shutdown); a second run replayed everything again (all chat duplicates) and was
-- killed, so sessions 5 and 6 are still open. Types: chatmsg (with and without dms, a colour),
-- dgb, rss on/off, uenter, comm_chatmsg paid (cprice 1000, cet 30) and a box notice (cprice 0).
-- The full-text index is on (the default for a new database). The migration test loads it and
-- opens it with store_open.
PRAGMA foreign_keys=OFF;
BEGIN TRANSACTION;
CREATE TABLE rooms (
  room_id   INTEGER PRIMARY KEY,   -- Douyu numeric room id (douyu.com/<room_id>)
  label     TEXT,                  -- optional name from the config
  added_at  INTEGER NOT NULL
);
INSERT INTO rooms VALUES(9999,'测试房间',1796186351091);
INSERT INTO rooms VALUES(288016,'second room',1796186351091);
CREATE TABLE sessions (            -- one row per connection that reached TCP-connected
  id          INTEGER PRIMARY KEY,
  room_id     INTEGER NOT NULL,
  server      TEXT NOT NULL,       -- e.g. wss://danmuproxy.douyu.com:8504/
  started_at  INTEGER NOT NULL,
  joined_at   INTEGER,             -- login accepted and group joined
  ended_at    INTEGER,             -- NULL while the session is live
  end_reason  TEXT,                -- shutdown | server closed | heartbeat timeout | tls: ... | removed | ...
  messages    INTEGER NOT NULL DEFAULT 0
);
INSERT INTO sessions VALUES(1,9999,'ws://127.0.0.1:43857/',1796186351091,1796186351095,1796186351147,'connection reset',6);
INSERT INTO sessions VALUES(2,288016,'ws://127.0.0.1:43857/',1796186351091,1796186351095,1796186351147,'connection reset',6);
INSERT INTO sessions VALUES(3,288016,'ws://127.0.0.1:43857/',1796186351560,1796186351562,1796186355087,'shutdown',7);
INSERT INTO sessions VALUES(4,9999,'ws://127.0.0.1:43857/',1796186352123,1796186352124,1796186355087,'shutdown',7);
INSERT INTO sessions VALUES(5,9999,'ws://127.0.0.1:34503/',1796186355213,1796186355219,NULL,NULL,6);
INSERT INTO sessions VALUES(6,288016,'ws://127.0.0.1:34503/',1796186355213,1796186355219,NULL,NULL,6);
CREATE TABLE messages (
  id          INTEGER PRIMARY KEY,
  room_id     INTEGER NOT NULL,
  ts          INTEGER NOT NULL,    -- when received
  type        TEXT NOT NULL,       -- the platform's message type: chatmsg, dgb, uenter, ...
  uid         INTEGER,
  nick        TEXT,
  level       INTEGER,
  text        TEXT,                -- chat text for chat messages, else NULL
  cid         TEXT,                -- the platform's unique message id, when it has one
  session_id  INTEGER,
  data        TEXT NOT NULL        -- every field of the message, as a JSON object, lossless
);
INSERT INTO messages VALUES(1,9999,1796186351095,'rss',NULL,NULL,NULL,NULL,NULL,1,'{"type":"rss","rid":"9999","ss":"1","code":"0","rt":"0","notify":"0","endtime":"0","ivl":"0"}');
INSERT INTO messages VALUES(2,9999,1796186351095,'uenter',889966309,'观众1',36,NULL,NULL,1,'{"type":"uenter","rid":"9999","uid":"889966309","nn":"观众1","level":"36"}');
INSERT INTO messages VALUES(3,9999,1796186351096,'chatmsg',46780819,'uvc54064957',12,'gg','a589a1c28c3b4cea1004170000000000',1,'{"type":"chatmsg","rid":"9999","uid":"46780819","nn":"uvc54064957","txt":"gg","cid":"a589a1c28c3b4cea1004170000000000","level":"12","cst":"1790519453584","dms":"4"}');
INSERT INTO messages VALUES(4,9999,1796186351096,'chatmsg',19095068,'观众2',12,'这个小涵涵根本不会打线，线上太吃力了','a589a1c28c3b4cea1204170000000000',1,'{"type":"chatmsg","rid":"9999","uid":"19095068","nn":"观众2","txt":"这个小涵涵根本不会打线，线上太吃力了","cid":"a589a1c28c3b4cea1204170000000000","level":"12","col":"2","cst":"1790519453584","dms":"4"}');
INSERT INTO messages VALUES(5,9999,1796186351096,'chatmsg',7914302,'zdofl382744',12,'FG你是不能玩人马的','9aac6322ff5843e77103170000000000',1,'{"type":"chatmsg","rid":"9999","uid":"7914302","nn":"zdofl382744","txt":"FG你是不能玩人马的","cid":"9aac6322ff5843e77103170000000000","level":"12","cst":"1790519453584"}');
INSERT INTO messages VALUES(6,9999,1796186351096,'dgb',5413638,'观众3',39,NULL,NULL,1,'{"type":"dgb","rid":"9999","gfid":"824","gfn":"粉丝荧光棒","uid":"5413638","nn":"观众3","level":"39","gfcnt":"10","hits":"10"}');
INSERT INTO messages VALUES(7,288016,1796186351096,'rss',NULL,NULL,NULL,NULL,NULL,2,'{"type":"rss","rid":"288016","ss":"1","code":"0","rt":"0","notify":"0","endtime":"0","ivl":"0"}');
INSERT INTO messages VALUES(8,288016,1796186351096,'uenter',889966309,'观众1',36,NULL,NULL,2,'{"type":"uenter","rid":"288016","uid":"889966309","nn":"观众1","level":"36"}');
INSERT INTO messages VALUES(9,288016,1796186351096,'chatmsg',46780819,'uvc54064957',12,'gg','a589a1c28c3b4cea1004170000000000',2,'{"type":"chatmsg","rid":"288016","uid":"46780819","nn":"uvc54064957","txt":"gg","cid":"a589a1c28c3b4cea1004170000000000","level":"12","cst":"1790519453584","dms":"4"}');
INSERT INTO messages VALUES(10,288016,1796186351096,'chatmsg',19095068,'观众2',12,'这个小涵涵根本不会打线，线上太吃力了','a589a1c28c3b4cea1204170000000000',2,'{"type":"chatmsg","rid":"288016","uid":"19095068","nn":"观众2","txt":"这个小涵涵根本不会打线，线上太吃力了","cid":"a589a1c28c3b4cea1204170000000000","level":"12","col":"2","cst":"1790519453584","dms":"4"}');
INSERT INTO messages VALUES(11,288016,1796186351096,'chatmsg',7914302,'zdofl382744',12,'FG你是不能玩人马的','9aac6322ff5843e77103170000000000',2,'{"type":"chatmsg","rid":"288016","uid":"7914302","nn":"zdofl382744","txt":"FG你是不能玩人马的","cid":"9aac6322ff5843e77103170000000000","level":"12","cst":"1790519453584"}');
INSERT INTO messages VALUES(12,288016,1796186351096,'dgb',5413638,'观众3',39,NULL,NULL,2,'{"type":"dgb","rid":"288016","gfid":"824","gfn":"粉丝荧光棒","uid":"5413638","nn":"观众3","level":"39","gfcnt":"10","hits":"10"}');
INSERT INTO messages VALUES(13,288016,1796186351562,'rss',NULL,NULL,NULL,NULL,NULL,3,'{"type":"rss","rid":"288016","ss":"1","code":"0","rt":"0","notify":"0","endtime":"0","ivl":"0"}');
INSERT INTO messages VALUES(14,288016,1796186351562,'uenter',889966309,'观众1',36,NULL,NULL,3,'{"type":"uenter","rid":"288016","uid":"889966309","nn":"观众1","level":"36"}');
INSERT INTO messages VALUES(15,288016,1796186351563,'dgb',5413638,'观众3',39,NULL,NULL,3,'{"type":"dgb","rid":"288016","gfid":"824","gfn":"粉丝荧光棒","uid":"5413638","nn":"观众3","level":"39","gfcnt":"10","hits":"10"}');
INSERT INTO messages VALUES(16,288016,1796186351563,'comm_chatmsg',110510743,'小爷话不多',21,'卡着谢这么多遍',NULL,3,'{"type":"comm_chatmsg","vrid":"2013081579710062592","btype":"voiceDanmu","chatmsg":"nn@=小爷话不多/level@=21/type@=chatmsg/rid@=9999/uid@=110510743/txt@=卡着谢这么多遍/","range":"2","cprice":"1000","crealPrice":"1000","cmgType":"1","rid":"288016","gbtemp":"2","uid":"110510743","cet":"30","now":"1768791052053"}');
INSERT INTO messages VALUES(17,288016,1796186351563,'comm_chatmsg',339634851,'打死不吃西红柿A',41,NULL,NULL,3,'{"type":"comm_chatmsg","btype":"pandora","chatmsg":"nn@=打死不吃西红柿A/level@=41/type@=chatmsg/rid@=9999/uid@=339634851/","range":"2","cprice":"0","cmgType":"0","rid":"288016","uid":"339634851","txt1":"赠送主播","crealPrice":"0","cet":"0","now":"1785509711867"}');
INSERT INTO messages VALUES(18,288016,1796186351563,'chatmsg',138110825,'观众4',12,'你们不是对手啊','77d14aa4fd13436fe802170000000000',3,'{"type":"chatmsg","rid":"288016","uid":"138110825","nn":"观众4","txt":"你们不是对手啊","cid":"77d14aa4fd13436fe802170000000000","level":"12","col":"5","cst":"1790519453584","dms":"4"}');
INSERT INTO messages VALUES(19,288016,1796186351563,'rss',NULL,NULL,NULL,NULL,NULL,3,'{"type":"rss","rid":"288016","ss":"0","code":"0","rt":"0","notify":"0","endtime":"1790519460","ivl":"0"}');
INSERT INTO messages VALUES(20,9999,1796186352125,'rss',NULL,NULL,NULL,NULL,NULL,4,'{"type":"rss","rid":"9999","ss":"1","code":"0","rt":"0","notify":"0","endtime":"0","ivl":"0"}');
INSERT INTO messages VALUES(21,9999,1796186352125,'uenter',889966309,'观众1',36,NULL,NULL,4,'{"type":"uenter","rid":"9999","uid":"889966309","nn":"观众1","level":"36"}');
INSERT INTO messages VALUES(22,9999,1796186352125,'dgb',5413638,'观众3',39,NULL,NULL,4,'{"type":"dgb","rid":"9999","gfid":"824","gfn":"粉丝荧光棒","uid":"5413638","nn":"观众3","level":"39","gfcnt":"10","hits":"10"}');
INSERT INTO messages VALUES(23,9999,1796186352125,'comm_chatmsg',110510743,'小爷话不多',21,'卡着谢这么多遍',NULL,4,'{"type":"comm_chatmsg","vrid":"2013081579710062592","btype":"voiceDanmu","chatmsg":"nn@=小爷话不多/level@=21/type@=chatmsg/rid@=9999/uid@=110510743/txt@=卡着谢这么多遍/","range":"2","cprice":"1000","crealPrice":"1000","cmgType":"1","rid":"9999","gbtemp":"2","uid":"110510743","cet":"30","now":"1768791052053"}');
INSERT INTO messages VALUES(24,9999,1796186352125,'comm_chatmsg',339634851,'打死不吃西红柿A',41,NULL,NULL,4,'{"type":"comm_chatmsg","btype":"pandora","chatmsg":"nn@=打死不吃西红柿A/level@=41/type@=chatmsg/rid@=9999/uid@=339634851/","range":"2","cprice":"0","cmgType":"0","rid":"9999","uid":"339634851","txt1":"赠送主播","crealPrice":"0","cet":"0","now":"1785509711867"}');
INSERT INTO messages VALUES(25,9999,1796186352125,'chatmsg',138110825,'观众4',12,'你们不是对手啊','77d14aa4fd13436fe802170000000000',4,'{"type":"chatmsg","rid":"9999","uid":"138110825","nn":"观众4","txt":"你们不是对手啊","cid":"77d14aa4fd13436fe802170000000000","level":"12","col":"5","cst":"1790519453584","dms":"4"}');
INSERT INTO messages VALUES(26,9999,1796186352125,'rss',NULL,NULL,NULL,NULL,NULL,4,'{"type":"rss","rid":"9999","ss":"0","code":"0","rt":"0","notify":"0","endtime":"1790519460","ivl":"0"}');
INSERT INTO messages VALUES(27,9999,1796186355219,'rss',NULL,NULL,NULL,NULL,NULL,5,'{"type":"rss","rid":"9999","ss":"1","code":"0","rt":"0","notify":"0","endtime":"0","ivl":"0"}');
INSERT INTO messages VALUES(28,9999,1796186355219,'uenter',889966309,'观众1',36,NULL,NULL,5,'{"type":"uenter","rid":"9999","uid":"889966309","nn":"观众1","level":"36"}');
INSERT INTO messages VALUES(29,9999,1796186355219,'dgb',5413638,'观众3',39,NULL,NULL,5,'{"type":"dgb","rid":"9999","gfid":"824","gfn":"粉丝荧光棒","uid":"5413638","nn":"观众3","level":"39","gfcnt":"10","hits":"10"}');
INSERT INTO messages VALUES(30,9999,1796186355219,'comm_chatmsg',110510743,'小爷话不多',21,'卡着谢这么多遍',NULL,5,'{"type":"comm_chatmsg","vrid":"2013081579710062592","btype":"voiceDanmu","chatmsg":"nn@=小爷话不多/level@=21/type@=chatmsg/rid@=9999/uid@=110510743/txt@=卡着谢这么多遍/","range":"2","cprice":"1000","crealPrice":"1000","cmgType":"1","rid":"9999","gbtemp":"2","uid":"110510743","cet":"30","now":"1768791052053"}');
INSERT INTO messages VALUES(31,9999,1796186355219,'comm_chatmsg',339634851,'打死不吃西红柿A',41,NULL,NULL,5,'{"type":"comm_chatmsg","btype":"pandora","chatmsg":"nn@=打死不吃西红柿A/level@=41/type@=chatmsg/rid@=9999/uid@=339634851/","range":"2","cprice":"0","cmgType":"0","rid":"9999","uid":"339634851","txt1":"赠送主播","crealPrice":"0","cet":"0","now":"1785509711867"}');
INSERT INTO messages VALUES(32,9999,1796186355219,'rss',NULL,NULL,NULL,NULL,NULL,5,'{"type":"rss","rid":"9999","ss":"0","code":"0","rt":"0","notify":"0","endtime":"1790519460","ivl":"0"}');
INSERT INTO messages VALUES(33,288016,1796186355219,'rss',NULL,NULL,NULL,NULL,NULL,6,'{"type":"rss","rid":"288016","ss":"1","code":"0","rt":"0","notify":"0","endtime":"0","ivl":"0"}');
INSERT INTO messages VALUES(34,288016,1796186355219,'uenter',889966309,'观众1',36,NULL,NULL,6,'{"type":"uenter","rid":"288016","uid":"889966309","nn":"观众1","level":"36"}');
INSERT INTO messages VALUES(35,288016,1796186355219,'dgb',5413638,'观众3',39,NULL,NULL,6,'{"type":"dgb","rid":"288016","gfid":"824","gfn":"粉丝荧光棒","uid":"5413638","nn":"观众3","level":"39","gfcnt":"10","hits":"10"}');
INSERT INTO messages VALUES(36,288016,1796186355219,'comm_chatmsg',110510743,'小爷话不多',21,'卡着谢这么多遍',NULL,6,'{"type":"comm_chatmsg","vrid":"2013081579710062592","btype":"voiceDanmu","chatmsg":"nn@=小爷话不多/level@=21/type@=chatmsg/rid@=9999/uid@=110510743/txt@=卡着谢这么多遍/","range":"2","cprice":"1000","crealPrice":"1000","cmgType":"1","rid":"288016","gbtemp":"2","uid":"110510743","cet":"30","now":"1768791052053"}');
INSERT INTO messages VALUES(37,288016,1796186355219,'comm_chatmsg',339634851,'打死不吃西红柿A',41,NULL,NULL,6,'{"type":"comm_chatmsg","btype":"pandora","chatmsg":"nn@=打死不吃西红柿A/level@=41/type@=chatmsg/rid@=9999/uid@=339634851/","range":"2","cprice":"0","cmgType":"0","rid":"288016","uid":"339634851","txt1":"赠送主播","crealPrice":"0","cet":"0","now":"1785509711867"}');
INSERT INTO messages VALUES(38,288016,1796186355219,'rss',NULL,NULL,NULL,NULL,NULL,6,'{"type":"rss","rid":"288016","ss":"0","code":"0","rt":"0","notify":"0","endtime":"1790519460","ivl":"0"}');
PRAGMA writable_schema=ON;
INSERT INTO sqlite_schema(type,name,tbl_name,rootpage,sql)VALUES('table','messages_fts','messages_fts',0,'CREATE VIRTUAL TABLE messages_fts USING fts5(text, content=''messages_fts_source'',
  content_rowid=''id'', tokenize=''trigram'')');
CREATE TABLE IF NOT EXISTS 'messages_fts_data'(id INTEGER PRIMARY KEY, block BLOB);
INSERT INTO messages_fts_data VALUES(1,X'0c4e');
INSERT INTO messages_fts_data VALUES(10,X'00000000010a0a000a0101010201010301010401010501010601010701010801010901010a0101');
INSERT INTO messages_fts_data VALUES(137438953473,X'000000d30a30e4b88ae5a4aae5908304020f03078de4bc9ae689930402090307aae5b08fe6b6b50402030208bc9ae68993e7babf04020a0109e59083e58a9be4ba860402110208a4aae59083e58a9b0402100208b08fe6b6b5e6b6b50402040109e68993e7babfefbc8c04020b02089cace4b88de4bc9a0402080208a0b9e69cace4b88d0402070208b6b5e6a0b9e69cac0402060505b6b5e6a0b90402050109e7babfe4b88ae5a4aa04020e0406efbc8ce7babf04020c0109e8bf99e4b8aae5b08f0402020109efbc8ce7babfe4b88a04020d040e0c0c0d0e0d0d0e0d0d0d0a0e0b0e');
INSERT INTO messages_fts_data VALUES(274877906945,X'0000006c06306667e4bda0050202010767e4bda0e698af0502030109e4b88de883bde78ea90502060208babae9a9ace79a840502090208bda0e698afe4b88d0502040109e698afe4b88de883bd0502050109e78ea9e4babae9a9ac0502080109e883bde78ea9e4baba050207040a0c0e0d0d0e0e');
INSERT INTO messages_fts_data VALUES(412316860417,X'000000d30a30e4b88ae5a4aae590830a020f03078de4bc9ae689930a02090307aae5b08fe6b6b50a02030208bc9ae68993e7babf0a020a0109e59083e58a9be4ba860a02110208a4aae59083e58a9b0a02100208b08fe6b6b5e6b6b50a02040109e68993e7babfefbc8c0a020b02089cace4b88de4bc9a0a02080208a0b9e69cace4b88d0a02070208b6b5e6a0b9e69cac0a02060505b6b5e6a0b90a02050109e7babfe4b88ae5a4aa0a020e0406efbc8ce7babf0a020c0109e8bf99e4b8aae5b08f0a02020109efbc8ce7babfe4b88a0a020d040e0c0c0d0e0d0d0e0d0d0d0a0e0b0e');
INSERT INTO messages_fts_data VALUES(549755813889,X'0000006c06306667e4bda00b0202010767e4bda0e698af0b02030109e4b88de883bde78ea90b02060208babae9a9ace79a840b02090208bda0e698afe4b88d0b02040109e698afe4b88de883bd0b02050109e78ea9e4babae9a9ac0b02080109e883bde78ea9e4baba0b0207040a0c0e0d0d0e0e');
INSERT INTO messages_fts_data VALUES(687194767361,X'000000490a30e4b988e5a49ae9818d1002060109e58da1e79d80e8b0a21002020109e79d80e8b0a2e8bf991002030109e8b0a2e8bf99e4b9881002040208bf99e4b988e5a49a100205040e0e0e0e');
INSERT INTO messages_fts_data VALUES(824633720833,X'000000480a30e4b88de698afe5afb91202040208bbace4b88de698af1202030208bda0e4bbace4b88d1202020109e5afb9e6898be5958a1202060109e698afe5afb9e6898b120205040e0d0d0e');
INSERT INTO messages_fts_data VALUES(962072674305,X'000000490a30e4b988e5a49ae9818d1702060109e58da1e79d80e8b0a21702020109e79d80e8b0a2e8bf991702030109e8b0a2e8bf99e4b9881702040208bf99e4b988e5a49a170205040e0e0e0e');
INSERT INTO messages_fts_data VALUES(1099511627777,X'000000480a30e4b88de698afe5afb91902040208bbace4b88de698af1902030208bda0e4bbace4b88d1902020109e5afb9e6898be5958a1902060109e698afe5afb9e6898b190205040e0d0d0e');
INSERT INTO messages_fts_data VALUES(1236950581249,X'000000490a30e4b988e5a49ae9818d1e02060109e58da1e79d80e8b0a21e02020109e79d80e8b0a2e8bf991e02030109e8b0a2e8bf99e4b9881e02040208bf99e4b988e5a49a1e0205040e0e0e0e');
INSERT INTO messages_fts_data VALUES(1374389534721,X'000000490a30e4b988e5a49ae9818d2402060109e58da1e79d80e8b0a22402020109e79d80e8b0a2e8bf992402030109e8b0a2e8bf99e4b9882402040208bf99e4b988e5a49a240205040e0e0e0e');
CREATE TABLE IF NOT EXISTS 'messages_fts_idx'(segid, term, pgno, PRIMARY KEY(segid, term)) WITHOUT ROWID;
INSERT INTO messages_fts_idx VALUES(1,X'',2);
INSERT INTO messages_fts_idx VALUES(2,X'',2);
INSERT INTO messages_fts_idx VALUES(3,X'',2);
INSERT INTO messages_fts_idx VALUES(4,X'',2);
INSERT INTO messages_fts_idx VALUES(5,X'',2);
INSERT INTO messages_fts_idx VALUES(6,X'',2);
INSERT INTO messages_fts_idx VALUES(7,X'',2);
INSERT INTO messages_fts_idx VALUES(8,X'',2);
INSERT INTO messages_fts_idx VALUES(9,X'',2);
INSERT INTO messages_fts_idx VALUES(10,X'',2);
CREATE TABLE IF NOT EXISTS 'messages_fts_docsize'(id INTEGER PRIMARY KEY, sz BLOB);
INSERT INTO messages_fts_docsize VALUES(3,X'00');
INSERT INTO messages_fts_docsize VALUES(4,X'10');
INSERT INTO messages_fts_docsize VALUES(5,X'08');
INSERT INTO messages_fts_docsize VALUES(9,X'00');
INSERT INTO messages_fts_docsize VALUES(10,X'10');
INSERT INTO messages_fts_docsize VALUES(11,X'08');
INSERT INTO messages_fts_docsize VALUES(16,X'05');
INSERT INTO messages_fts_docsize VALUES(18,X'05');
INSERT INTO messages_fts_docsize VALUES(23,X'05');
INSERT INTO messages_fts_docsize VALUES(25,X'05');
INSERT INTO messages_fts_docsize VALUES(30,X'05');
INSERT INTO messages_fts_docsize VALUES(36,X'05');
CREATE TABLE IF NOT EXISTS 'messages_fts_config'(k PRIMARY KEY, v) WITHOUT ROWID;
INSERT INTO messages_fts_config VALUES('version',4);
CREATE INDEX messages_room_ts ON messages(room_id, ts);
CREATE UNIQUE INDEX messages_room_cid ON messages(room_id, cid) WHERE cid IS NOT NULL;
CREATE INDEX messages_uid_ts ON messages(uid, ts) WHERE uid IS NOT NULL;
CREATE INDEX messages_rss ON messages(room_id, ts) WHERE type = 'rss';
CREATE INDEX sessions_room_started ON sessions(room_id, started_at);
CREATE VIEW chat AS
  SELECT datetime(ts / 1000, 'unixepoch', 'localtime') AS time,
         room_id, uid, nick, level, text,
         coalesce(json_extract(data, '$.dms'), '') = '' AS robot,
         CASE WHEN CAST(json_extract(data, '$.cst') AS INTEGER) < 100000000000
              THEN CAST(json_extract(data, '$.cst') AS INTEGER) * 1000
              ELSE CAST(json_extract(data, '$.cst') AS INTEGER) END AS sent_at,
         ts, id, session_id
  FROM messages WHERE type = 'chatmsg';
CREATE VIEW gifts AS
  SELECT datetime(ts / 1000, 'unixepoch', 'localtime') AS time,
         room_id, uid, nick,
         CAST(json_extract(data, '$.gfid') AS INTEGER) AS gift_id,
         json_extract(data, '$.gfn') AS gift_name,
         coalesce(CAST(json_extract(data, '$.gfcnt') AS INTEGER), 1) AS count,
         CAST(json_extract(data, '$.hits') AS INTEGER) AS hits,
         ts, id
  FROM messages WHERE type = 'dgb';
CREATE VIEW live AS
  SELECT datetime(ts / 1000, 'unixepoch', 'localtime') AS time,
         room_id,
         CAST(json_extract(data, '$.ss') AS INTEGER) AS live,
         coalesce(CAST(json_extract(data, '$.ivl') AS INTEGER), 0) AS replay,
         ts, id
  FROM messages WHERE type = 'rss';
CREATE VIEW gaps AS
  WITH s AS (
    SELECT room_id, joined_at, ended_at, end_reason,
           lead(joined_at) OVER (PARTITION BY room_id ORDER BY joined_at, id) AS next_join
    FROM sessions WHERE joined_at IS NOT NULL
  ), e AS (
    SELECT room_id, joined_at, end_reason,
           coalesce(ended_at, max(joined_at, coalesce(
             (SELECT messages.ts FROM messages WHERE messages.room_id = s.room_id
                AND messages.ts < s.next_join ORDER BY messages.ts DESC LIMIT 1),
             joined_at))) AS end_at
    FROM s
  ), r AS (
    SELECT room_id, joined_at,
           max(end_at) OVER w AS prev_end,
           last_value(end_reason) OVER w AS reason
    FROM e
    WINDOW w AS (PARTITION BY room_id ORDER BY joined_at
                 ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
  )
  SELECT room_id,
         datetime(prev_end / 1000, 'unixepoch', 'localtime') AS gap_from,
         datetime(joined_at / 1000, 'unixepoch', 'localtime') AS gap_to,
         (joined_at - prev_end) / 1000.0 AS seconds,
         reason, prev_end AS from_ts, joined_at AS to_ts
  FROM r WHERE joined_at > prev_end;
CREATE VIEW daily AS
  SELECT date(ts / 1000, 'unixepoch', 'localtime') AS day, room_id,
         count(*) AS messages,
         sum(type = 'chatmsg') AS chats,
         count(DISTINCT CASE WHEN type = 'chatmsg' THEN uid END) AS chatters,
         sum(type = 'dgb') AS gifts
  FROM messages GROUP BY room_id, day;
CREATE VIEW room_stats AS
  SELECT room_id, label, live, session_start, messages,
         datetime(last / 1000, 'unixepoch', 'localtime') AS last_message,
         strftime('%s', 'now') - last / 1000 AS silent_s,
         sessions, reconnects_24h
  FROM (SELECT rooms.room_id, rooms.label,
               coalesce(cur.joined_at IS NOT NULL AND cur.ended_at IS NULL, 0) AS live,
               CASE WHEN cur.joined_at IS NOT NULL AND cur.ended_at IS NULL
                    THEN datetime(cur.joined_at / 1000, 'unixepoch', 'localtime') END
                 AS session_start,
               (SELECT coalesce(sum(sessions.messages), 0) FROM sessions
                WHERE sessions.room_id = rooms.room_id) AS messages,
               (SELECT messages.ts FROM messages WHERE messages.room_id = rooms.room_id
                ORDER BY messages.ts DESC LIMIT 1) AS last,
               (SELECT count(*) FROM sessions WHERE sessions.room_id = rooms.room_id)
                 AS sessions,
               (SELECT count(*) FROM sessions WHERE sessions.room_id = rooms.room_id
                  AND sessions.ended_at >= (strftime('%s', 'now') - 86400) * 1000
                  AND sessions.end_reason NOT IN ('shutdown', 'removed')) AS reconnects_24h
        FROM rooms
        LEFT JOIN sessions cur ON cur.id = (
          SELECT sessions.id FROM sessions WHERE sessions.room_id = rooms.room_id
          ORDER BY sessions.started_at DESC, sessions.id DESC LIMIT 1));
CREATE VIEW messages_fts_source AS
  SELECT id, text FROM messages WHERE text IS NOT NULL;
CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages WHEN new.text IS NOT NULL BEGIN
  INSERT INTO messages_fts(rowid, text) VALUES (new.id, new.text);
END;
CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages WHEN old.text IS NOT NULL BEGIN
  INSERT INTO messages_fts(messages_fts, rowid, text) VALUES ('delete', old.id, old.text);
END;
CREATE TRIGGER messages_fts_update AFTER UPDATE OF text ON messages BEGIN
  INSERT INTO messages_fts(messages_fts, rowid, text)
    SELECT 'delete', old.id, old.text WHERE old.text IS NOT NULL;
  INSERT INTO messages_fts(rowid, text) SELECT new.id, new.text WHERE new.text IS NOT NULL;
END;
PRAGMA writable_schema=OFF;
PRAGMA user_version = 2;
COMMIT;
