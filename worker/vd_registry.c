/*
 * vd_registry.c - the task registry (SPEC §4): one hash NS:task:ID per task
 * holding state, kind, owner, lease_until, attempt, seq, checkpoint, cancel
 * and the last event's bytes. Claims and renewals are Lua scripts so that
 * two workers never both own a task; times come from the Redis server's
 * clock so workers' clocks need not agree.
 */
#include "worker_int.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TASK_TTL_S (30 * 24 * 3600) /* ended tasks are kept 30 days */

static const char claim_lua[] =
    "local k=KEYS[1]\n"
    "local t=redis.call('TIME')\n"
    "local now=tonumber(t[1])*1000+math.floor(tonumber(t[2])/1000)\n"
    "local st=redis.call('HGET',k,'state')\n"
    "if st=='SUCCEEDED' or st=='FAILED' or st=='CANCELLED' or st=='REJECTED' then\n"
    "  return {1, redis.call('HGET',k,'last_event') or '', 0, 0}\n"
    "end\n"
    "if st then\n"
    "  local lu=tonumber(redis.call('HGET',k,'lease_until') or '0')\n"
    "  if lu>now then return {2,'',lu-now,0} end\n"
    "end\n"
    "local att=redis.call('HINCRBY',k,'attempt',1)\n"
    "redis.call('HSET',k,'owner',ARGV[2],'lease_until',now+tonumber(ARGV[1]),'kind',ARGV[3],"
    "'updated_at',now)\n"
    "if not st then redis.call('HSET',k,'state','ACCEPTED','created_at',now) end\n"
    "return {0,'',0,att}\n";

static const char renew_lua[] =
    "local k=KEYS[1]\n"
    "if redis.call('HGET',k,'owner')~=ARGV[2] then return -1 end\n"
    "local t=redis.call('TIME')\n"
    "local now=tonumber(t[1])*1000+math.floor(tonumber(t[2])/1000)\n"
    "redis.call('HSET',k,'lease_until',now+tonumber(ARGV[1]))\n"
    "return tonumber(redis.call('HGET',k,'cancel') or '0')\n";

static const char release_lua[] =
    "if redis.call('HGET',KEYS[1],'owner')==ARGV[1] then\n"
    "  redis.call('HSET',KEYS[1],'lease_until',0) end\n"
    "return 0\n";

static void task_key(char *out, size_t n, const char *ns, const char *id) {
    snprintf(out, n, "%s:task:%s", ns, id);
}

static vd_err reply_err(redisContext *c, redisReply *r, char *errstr, size_t n, const char *what) {
    if (!r)
        return vd_seterr(errstr, n, VD_ERR_REDIS_CONN, "%s: %s", what,
                         c->errstr[0] ? c->errstr : "connection lost");
    vd_err e = vd_seterr(errstr, n, VD_ERR_REDIS, "%s: %.*s", what,
                         r->type == REDIS_REPLY_ERROR ? (int)r->len : 15,
                         r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
    freeReplyObject(r);
    return e;
}

vd_err vd__task_claim(vd_store *s, const char *ns, const char *task_id, const char *kind,
                      const char *worker_id, int lease_ms, vd_claim *claim, int *attempt,
                      vd_buf *last_event, int64_t *lease_left_ms, char *errstr,
                      size_t errstr_size) {
    redisContext *c = vd_store_redis(s);
    char key[512], lease[32];
    task_key(key, sizeof key, ns, task_id);
    snprintf(lease, sizeof lease, "%d", lease_ms);
    redisReply *r = redisCommand(c, "EVAL %s 1 %s %s %s %s", claim_lua, key, lease, worker_id, kind);
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 4)
        return reply_err(c, r, errstr, errstr_size, "task claim");
    *claim = (vd_claim)r->element[0]->integer;
    *attempt = (int)r->element[3]->integer;
    if (lease_left_ms)
        *lease_left_ms = r->element[2]->integer;
    vd_err e = VD_ERR_OK;
    if (last_event && r->element[1]->type == REDIS_REPLY_STRING) {
        vd_buf_reset(last_event);
        e = vd_buf_append(last_event, r->element[1]->str, r->element[1]->len);
    }
    freeReplyObject(r);
    return e;
}

vd_err vd__task_renew(vd_store *s, const char *ns, const char *task_id, const char *worker_id,
                      int lease_ms, bool *cancel, char *errstr, size_t errstr_size) {
    redisContext *c = vd_store_redis(s);
    char key[512], lease[32];
    task_key(key, sizeof key, ns, task_id);
    snprintf(lease, sizeof lease, "%d", lease_ms);
    redisReply *r = redisCommand(c, "EVAL %s 1 %s %s %s", renew_lua, key, lease, worker_id);
    if (!r || r->type != REDIS_REPLY_INTEGER)
        return reply_err(c, r, errstr, errstr_size, "task lease renewal");
    long long v = r->integer;
    freeReplyObject(r);
    if (v < 0)
        return vd_seterr(errstr, errstr_size, VD_ERR_CONFLICT, "lease of task %s was lost", task_id);
    *cancel = v > 0;
    return VD_ERR_OK;
}

vd_err vd__task_next_seq(vd_store *s, const char *ns, const char *task_id, int64_t *seq,
                         char *errstr, size_t errstr_size) {
    redisContext *c = vd_store_redis(s);
    char key[512];
    task_key(key, sizeof key, ns, task_id);
    redisReply *r = redisCommand(c, "HINCRBY %s seq 1", key);
    if (!r || r->type != REDIS_REPLY_INTEGER)
        return reply_err(c, r, errstr, errstr_size, "task seq");
    *seq = r->integer;
    freeReplyObject(r);
    return VD_ERR_OK;
}

vd_err vd__task_record(vd_store *s, const char *ns, const char *task_id, const char *state,
                       const void *event, size_t event_len, bool final, char *errstr,
                       size_t errstr_size) {
    redisContext *c = vd_store_redis(s);
    char key[512], now[32];
    task_key(key, sizeof key, ns, task_id);
    snprintf(now, sizeof now, "%lld", (long long)vd_now_ms());
    redisAppendCommand(c, "HSET %s state %s last_event %b updated_at %s", key, state, event,
                       event_len, now);
    int n = 1;
    if (final) {
        redisAppendCommand(c, "HSET %s ended_at %s lease_until 0", key, now);
        redisAppendCommand(c, "EXPIRE %s %d", key, TASK_TTL_S);
        n += 2;
    }
    vd_err e = VD_ERR_OK;
    for (int i = 0; i < n; i++) {
        redisReply *r = NULL;
        if (redisGetReply(c, (void **)&r) != REDIS_OK || !r || r->type == REDIS_REPLY_ERROR) {
            if (!e)
                e = reply_err(c, r, errstr, errstr_size, "task record");
            else if (r)
                freeReplyObject(r);
            if (!r)
                break;
            continue;
        }
        freeReplyObject(r);
    }
    return e;
}

vd_err vd__task_release(vd_store *s, const char *ns, const char *task_id, const char *worker_id,
                        char *errstr, size_t errstr_size) {
    redisContext *c = vd_store_redis(s);
    char key[512];
    task_key(key, sizeof key, ns, task_id);
    redisReply *r = redisCommand(c, "EVAL %s 1 %s %s", release_lua, key, worker_id);
    if (!r || r->type != REDIS_REPLY_INTEGER)
        return reply_err(c, r, errstr, errstr_size, "task release");
    freeReplyObject(r);
    return VD_ERR_OK;
}

vd_err vd__task_checkpoint_save(vd_store *s, const char *ns, const char *task_id, int64_t v,
                                char *errstr, size_t errstr_size) {
    redisContext *c = vd_store_redis(s);
    char key[512], val[32];
    task_key(key, sizeof key, ns, task_id);
    snprintf(val, sizeof val, "%lld", (long long)v);
    redisReply *r = redisCommand(c, "HSET %s checkpoint %s", key, val);
    if (!r || r->type != REDIS_REPLY_INTEGER)
        return reply_err(c, r, errstr, errstr_size, "checkpoint save");
    freeReplyObject(r);
    return VD_ERR_OK;
}

vd_err vd__task_checkpoint_load(vd_store *s, const char *ns, const char *task_id, int64_t *v,
                                char *errstr, size_t errstr_size) {
    redisContext *c = vd_store_redis(s);
    char key[512];
    task_key(key, sizeof key, ns, task_id);
    redisReply *r = redisCommand(c, "HGET %s checkpoint", key);
    if (!r || (r->type != REDIS_REPLY_STRING && r->type != REDIS_REPLY_NIL))
        return reply_err(c, r, errstr, errstr_size, "checkpoint load");
    *v = r->type == REDIS_REPLY_STRING ? strtoll(r->str, NULL, 10) : 0;
    freeReplyObject(r);
    return VD_ERR_OK;
}

vd_err vd__task_request_cancel(vd_store *s, const char *ns, const char *task_id, char *state,
                               size_t state_size, char *errstr, size_t errstr_size) {
    redisContext *c = vd_store_redis(s);
    char key[512];
    task_key(key, sizeof key, ns, task_id);
    redisReply *r = redisCommand(c, "HGET %s state", key);
    if (!r || (r->type != REDIS_REPLY_STRING && r->type != REDIS_REPLY_NIL))
        return reply_err(c, r, errstr, errstr_size, "cancel");
    snprintf(state, state_size, "%.*s", r->type == REDIS_REPLY_STRING ? (int)r->len : 0,
             r->type == REDIS_REPLY_STRING ? r->str : "");
    freeReplyObject(r);
    if (!state[0])
        return VD_ERR_OK;
    r = redisCommand(c, "HSET %s cancel 1", key);
    if (!r || r->type != REDIS_REPLY_INTEGER)
        return reply_err(c, r, errstr, errstr_size, "cancel");
    freeReplyObject(r);
    return VD_ERR_OK;
}

vd_err vd__task_get(vd_store *s, const char *ns, const char *task_id, char *state,
                    size_t state_size, vd_buf *last_event, char *errstr, size_t errstr_size) {
    redisContext *c = vd_store_redis(s);
    char key[512];
    task_key(key, sizeof key, ns, task_id);
    redisReply *r = redisCommand(c, "HMGET %s state last_event", key);
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2)
        return reply_err(c, r, errstr, errstr_size, "task get");
    state[0] = 0;
    vd_err e = VD_ERR_OK;
    if (r->element[0]->type == REDIS_REPLY_STRING)
        snprintf(state, state_size, "%.*s", (int)r->element[0]->len, r->element[0]->str);
    else
        e = vd_seterr(errstr, errstr_size, VD_ERR_NOT_FOUND, "no task %s in namespace %s", task_id, ns);
    if (!e && last_event && r->element[1]->type == REDIS_REPLY_STRING) {
        vd_buf_reset(last_event);
        e = vd_buf_append(last_event, r->element[1]->str, r->element[1]->len);
    }
    freeReplyObject(r);
    return e;
}
