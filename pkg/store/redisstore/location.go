package redisstore

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/siphon-lab/siphon/pkg/store"
)

// Layout: one hash per AOR, siphon:loc:{aor}, contact → "<expiry ms> <binding JSON>";
// the hash tag keeps an AOR in one Cluster slot, so a REGISTER is one atomic
// script. siphon:loc:index scores each AOR by its earliest expiry, so the
// registrars' sweep finds what has expired without scanning.
const locIndex = KeyPrefix + "loc:index"

func locKey(aor string) string { return KeyPrefix + "loc:{" + aor + "}" }

// locGrace keeps an AOR's hash a little past its last expiry, so the sweep can
// still announce the expiry; after that Redis drops it even if no registrar runs.
const locGrace = 5 * time.Minute

// registerScript applies a REGISTER (RFC 3261 §10.3 steps 7-8) in one step.
// ARGV: now, Call-ID, CSeq, wildcard, change count, then per change: contact,
// remove, binding JSON, expiry; last the key's grace. Bindings found expired are
// removed and reported. The reply is a flat array, cheaper to read than JSON:
// "ok", earliest expiry, then counted lists of added and refreshed contacts and
// of removed, expired and current bindings (JSON); or {"out-of-order"}.
var registerScript = redis.NewScript(`
local key, now, callid, cseq = KEYS[1], tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3])
local wildcard, n = ARGV[4] == '1', tonumber(ARGV[5])
local function split(v) local sp = string.find(v, ' ', 1, true) return tonumber(string.sub(v, 1, sp - 1)), string.sub(v, sp + 1) end
local cur, out = {}, {added = {}, refreshed = {}, removed = {}, expired = {}, current = {}}
local all = redis.call('HGETALL', key)
for i = 1, #all, 2 do
  local exp, js = split(all[i + 1])
  if exp > now then cur[all[i]] = {exp, js} else
    table.insert(out.expired, js)
    redis.call('HDEL', key, all[i])
  end
end
local function stale(b)
  local d = cjson.decode(b[2])
  return d.call_id == callid and d.cseq >= cseq
end
if wildcard then
  for _, b in pairs(cur) do if stale(b) then return {'out-of-order'} end end
end
for i = 0, n - 1 do
  local b = cur[ARGV[6 + i * 4]]
  if b and stale(b) then return {'out-of-order'} end
end
if wildcard then
  for c, b in pairs(cur) do table.insert(out.removed, b[2]) redis.call('HDEL', key, c) end
  cur = {}
end
for i = 0, n - 1 do
  local c, rm, js, exp = ARGV[6 + i * 4], ARGV[7 + i * 4], ARGV[8 + i * 4], tonumber(ARGV[9 + i * 4])
  local old = cur[c]
  if rm == '1' then
    if old then table.insert(out.removed, old[2]) end
    redis.call('HDEL', key, c)
    cur[c] = nil
  else
    redis.call('HSET', key, c, exp .. ' ' .. js)
    cur[c] = {exp, js}
    if old then table.insert(out.refreshed, c) else table.insert(out.added, c) end
  end
end
local minexp, maxexp = 0, 0
for _, b in pairs(cur) do
  table.insert(out.current, b[2])
  if minexp == 0 or b[1] < minexp then minexp = b[1] end
  if b[1] > maxexp then maxexp = b[1] end
end
if maxexp > 0 then redis.call('PEXPIREAT', key, maxexp + tonumber(ARGV[6 + n * 4])) end
local reply = {'ok', tostring(minexp)}
for _, part in ipairs({out.added, out.refreshed, out.removed, out.expired, out.current}) do
  table.insert(reply, tostring(#part))
  for _, v in ipairs(part) do table.insert(reply, v) end
end
return reply`)

// expireScript removes an AOR's expired bindings. Reply, flat like
// registerScript's: the new earliest expiry (0: none left), then a counted list
// of the expired bindings (JSON).
var expireScript = redis.NewScript(`
local key, now = KEYS[1], tonumber(ARGV[1])
local expired, minexp = {}, 0
local all = redis.call('HGETALL', key)
for i = 1, #all, 2 do
  local v = all[i + 1]
  local sp = string.find(v, ' ', 1, true)
  local exp = tonumber(string.sub(v, 1, sp - 1))
  if exp <= now then
    table.insert(expired, string.sub(v, sp + 1))
    redis.call('HDEL', key, all[i])
  elseif minexp == 0 or exp < minexp then minexp = exp end
end
local reply = {tostring(minexp), tostring(#expired)}
for _, v in ipairs(expired) do table.insert(reply, v) end
return reply`)

type location struct {
	rdb redis.UniversalClient
}

func (l *location) Register(ctx context.Context, reg store.Registration, now time.Time) (store.Outcome, error) {
	wildcard := "0"
	if reg.Wildcard {
		wildcard = "1"
	}
	args := []any{now.UnixMilli(), reg.CallID, reg.CSeq, wildcard, len(reg.Changes)}
	for _, ch := range reg.Changes {
		js, err := json.Marshal(ch.Binding)
		if err != nil {
			return store.Outcome{}, fmt.Errorf("redisstore: encode binding: %w", err)
		}
		remove := "0"
		if ch.Remove {
			remove = "1"
		}
		args = append(args, ch.Binding.Contact, remove, js, ch.Binding.Expires.UnixMilli())
	}
	args = append(args, locGrace.Milliseconds())
	// The expiry index is another key (another Cluster slot), so it is a second
	// command, pipelined with the script: ZADD LT keeps the earliest expiry the
	// AOR may have; the sweep corrects it when it finds nothing due yet.
	earliest := int64(0)
	for _, ch := range reg.Changes {
		if e := ch.Binding.Expires.UnixMilli(); !ch.Remove && (earliest == 0 || e < earliest) {
			earliest = e
		}
	}
	pipe := l.rdb.Pipeline()
	script := registerScript.EvalSha(ctx, pipe, []string{locKey(reg.AOR)}, args...)
	if earliest > 0 {
		pipe.ZAddLT(ctx, locIndex, redis.Z{Score: float64(earliest), Member: reg.AOR})
	}
	_, err := pipe.Exec(ctx)
	if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		script = registerScript.Eval(ctx, l.rdb, []string{locKey(reg.AOR)}, args...)
		err = script.Err()
	}
	if err != nil {
		return store.Outcome{}, fmt.Errorf("redisstore: register %s: %w", reg.AOR, err)
	}
	reply, err := script.StringSlice()
	if err != nil || len(reply) == 0 {
		return store.Outcome{}, fmt.Errorf("redisstore: register %s: reply: %v", reg.AOR, err)
	}
	if reply[0] == "out-of-order" {
		return store.Outcome{}, store.ErrOutOfOrder
	}
	lists, err := splitLists(reply[2:], 5)
	if err != nil {
		return store.Outcome{}, fmt.Errorf("redisstore: register %s: %w", reg.AOR, err)
	}
	byContact := make(map[string]store.Binding, len(reg.Changes))
	for _, ch := range reg.Changes {
		byContact[ch.Binding.Contact] = ch.Binding
	}
	var out store.Outcome
	for _, c := range lists[0] {
		out.Added = append(out.Added, byContact[c])
	}
	for _, c := range lists[1] {
		out.Refreshed = append(out.Refreshed, byContact[c])
	}
	if out.Removed, err = decodeBindings(lists[2]); err != nil {
		return store.Outcome{}, err
	}
	if out.Expired, err = decodeBindings(lists[3]); err != nil {
		return store.Outcome{}, err
	}
	if out.Current, err = decodeBindings(lists[4]); err != nil {
		return store.Outcome{}, err
	}
	store.SortByQ(out.Current)
	if minExpiry, _ := strconv.ParseInt(reply[1], 10, 64); minExpiry == 0 {
		// Nothing left: drop the AOR from the index now rather than at a sweep.
		if err := l.rdb.ZRem(ctx, locIndex, reg.AOR).Err(); err != nil {
			return out, fmt.Errorf("redisstore: index %s: %w", reg.AOR, err)
		}
	}
	return out, nil
}

// splitLists reads n counted lists from a flat script reply.
func splitLists(flat []string, n int) ([][]string, error) {
	out := make([][]string, 0, n)
	for range n {
		if len(flat) == 0 {
			return nil, errors.New("short script reply")
		}
		count, err := strconv.Atoi(flat[0])
		if err != nil || count > len(flat)-1 {
			return nil, errors.New("malformed script reply")
		}
		out = append(out, flat[1:1+count])
		flat = flat[1+count:]
	}
	return out, nil
}

func decodeBindings(list []string) ([]store.Binding, error) {
	out := make([]store.Binding, 0, len(list))
	for _, js := range list {
		var b store.Binding
		if err := json.Unmarshal([]byte(js), &b); err != nil {
			return nil, fmt.Errorf("redisstore: stored binding: %w", err)
		}
		out = append(out, b)
	}
	return out, nil
}

// index records the AOR's earliest expiry for the sweep.
func (l *location) index(ctx context.Context, aor string, minExpiry int64) error {
	var err error
	if minExpiry == 0 {
		err = l.rdb.ZRem(ctx, locIndex, aor).Err()
	} else {
		err = l.rdb.ZAdd(ctx, locIndex, redis.Z{Score: float64(minExpiry), Member: aor}).Err()
	}
	if err != nil {
		return fmt.Errorf("redisstore: index %s: %w", aor, err)
	}
	return nil
}

func (l *location) Lookup(ctx context.Context, aor string, now time.Time) ([]store.Binding, error) {
	all, err := l.rdb.HGetAll(ctx, locKey(aor)).Result()
	if err != nil {
		return nil, fmt.Errorf("redisstore: lookup %s: %w", aor, err)
	}
	out := make([]store.Binding, 0, len(all))
	for _, v := range all {
		expStr, js, ok := strings.Cut(v, " ")
		exp, err := strconv.ParseInt(expStr, 10, 64)
		if !ok || err != nil {
			return nil, fmt.Errorf("redisstore: lookup %s: malformed binding", aor)
		}
		if exp <= now.UnixMilli() {
			continue
		}
		var b store.Binding
		if err := json.Unmarshal([]byte(js), &b); err != nil {
			return nil, fmt.Errorf("redisstore: lookup %s: %w", aor, err)
		}
		out = append(out, b)
	}
	store.SortByQ(out)
	return out, nil
}

func (l *location) Expire(ctx context.Context, now time.Time, limit int) ([]store.Binding, error) {
	due, err := l.rdb.ZRangeByScore(ctx, locIndex, &redis.ZRangeBy{
		Min: "-inf", Max: strconv.FormatInt(now.UnixMilli(), 10), Count: int64(limit),
	}).Result()
	if err != nil {
		return nil, fmt.Errorf("redisstore: expiry index: %w", err)
	}
	var out []store.Binding
	for _, aor := range due {
		reply, err := expireScript.Run(ctx, l.rdb, []string{locKey(aor)}, now.UnixMilli()).StringSlice()
		if err != nil || len(reply) == 0 {
			return out, fmt.Errorf("redisstore: expire %s: %v", aor, err)
		}
		lists, err := splitLists(reply[1:], 1)
		if err != nil {
			return out, fmt.Errorf("redisstore: expire %s: %w", aor, err)
		}
		expired, err := decodeBindings(lists[0])
		if err != nil {
			return out, err
		}
		minExpiry, _ := strconv.ParseInt(reply[0], 10, 64)
		out = append(out, expired...)
		if err := l.index(ctx, aor, minExpiry); err != nil {
			return out, err
		}
	}
	return out, nil
}

type secrets struct {
	rdb redis.UniversalClient
}

func (s *secrets) Secret(ctx context.Context, name string, size int) ([]byte, error) {
	key := KeyPrefix + "secret:{" + name + "}"
	v := make([]byte, size)
	if _, err := rand.Read(v); err != nil {
		return nil, err
	}
	// The first replica's value wins; everyone reads it back.
	if err := s.rdb.SetNX(ctx, key, v, 0).Err(); err != nil {
		return nil, fmt.Errorf("redisstore: secret %s: %w", name, err)
	}
	got, err := s.rdb.Get(ctx, key).Bytes()
	if err != nil {
		if errors.Is(err, redis.Nil) {
			return nil, fmt.Errorf("redisstore: secret %s vanished", name)
		}
		return nil, fmt.Errorf("redisstore: secret %s: %w", name, err)
	}
	return got, nil
}
