/*
 * vd_store_iter.c - the streaming reader: SSCAN NS:docs in batches, then
 * pipelined reads, holding at most one batch of document heads and one
 * window of chunks (and files) in memory.
 *
 *   batch:  SSCAN NS:docs COUNT batch -> ids
 *           pipeline HGETALL doc, ZRANGE zset WITHSCORES, STRLEN file
 *   window: the next documents of the batch, as many as fit in
 *           ITER_WINDOW_CHUNKS chunks and ITER_WINDOW_FILE_BYTES file bytes
 *           (at least one): pipeline HGETALL of each chunk and GET of each
 *           file, build the groups, hand them out one by one.
 */
#define _POSIX_C_SOURCE 200809L
#include "vd_store_int.h"

#include <stdlib.h>
#include <string.h>

#define ITER_DEFAULT_BATCH 256
#define ITER_MAX_BATCH 100000
#define ITER_WINDOW_CHUNKS 2048
#define ITER_WINDOW_FILE_BYTES (16u << 20)

typedef struct iter_head {
    char id[VD_ID_MAX + 1];
    redisReply *doc;    /* HGETALL */
    redisReply *zset;   /* ZRANGE WITHSCORES */
    long long file_len; /* STRLEN, 0 when absent or not read */
} iter_head;

struct vd_store_iter {
    vd_store *s;
    char ns[VD__NS_MAX + 1];
    bool with_files;
    size_t batch;
    char cursor[32];
    bool scan_done;
    vd_err err;         /* sticky: once failed, every next fails */
    char errmsg[512];

    iter_head *heads;   /* the current batch */
    size_t nheads, hpos;

    vd_docgroup *ready; /* the current window, built */
    size_t nready, rpos;
};

vd_err vd_store_iter_new(vd_store *s, const char *ns, bool with_files, size_t batch,
                         vd_store_iter **out, char *errstr, size_t errstr_size) {
    vd_err e;
    *out = NULL;
    if ((e = vd__ns_check(ns, errstr, errstr_size)))
        return e;
    vd_store_iter *it = calloc(1, sizeof *it);
    if (!it)
        return vd_seterr(errstr, errstr_size, VD_ERR_NOMEM, "out of memory");
    it->s = s;
    memcpy(it->ns, ns, strlen(ns) + 1);
    it->with_files = with_files;
    it->batch = batch ? batch : ITER_DEFAULT_BATCH;
    if (it->batch > ITER_MAX_BATCH)
        it->batch = ITER_MAX_BATCH;
    memcpy(it->cursor, "0", 2);
    *out = it;
    return VD_ERR_OK;
}

static void heads_free(vd_store_iter *it) {
    for (size_t i = 0; i < it->nheads; i++) {
        if (it->heads[i].doc)
            freeReplyObject(it->heads[i].doc);
        if (it->heads[i].zset)
            freeReplyObject(it->heads[i].zset);
    }
    free(it->heads);
    it->heads = NULL;
    it->nheads = it->hpos = 0;
}

static void ready_free(vd_store_iter *it) {
    for (size_t i = it->rpos; i < it->nready; i++)
        vd_docgroup_clear(&it->ready[i]);
    free(it->ready);
    it->ready = NULL;
    it->nready = it->rpos = 0;
}

void vd_store_iter_destroy(vd_store_iter *it) {
    if (!it)
        return;
    heads_free(it);
    ready_free(it);
    free(it);
}

/* SSCAN the next ids and read their heads. */
static vd_err iter_load_batch(vd_store_iter *it, char *errstr, size_t errstr_size) {
    vd_store *s = it->s;
    char kdocs[VD__KEY_MAX], key[VD__KEY_MAX], count[24];
    size_t kdl = vd__key_docs(kdocs, it->ns);
    redisReply *r = NULL, **rep = NULL;
    size_t nrep = 0;
    vd_err e;

    snprintf(count, sizeof count, "%zu", it->batch);
    const char *argv[5] = {"SSCAN", kdocs, it->cursor, "COUNT", count};
    size_t lens[5] = {5, kdl, strlen(it->cursor), 5, strlen(count)};
    if ((e = vd__store_append(s, 5, argv, lens, errstr, errstr_size)) ||
        (e = vd__store_read(s, 1, &r, errstr, errstr_size)))
        return e;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_ARRAY ||
        r->element[0]->len >= sizeof it->cursor) {
        e = vd__reply_err(r, "SSCAN", kdocs, errstr, errstr_size);
        goto done;
    }
    memcpy(it->cursor, r->element[0]->str, r->element[0]->len);
    it->cursor[r->element[0]->len] = 0;
    if (strcmp(it->cursor, "0") == 0)
        it->scan_done = true;

    const redisReply *ids = r->element[1];
    it->heads = calloc(ids->elements ? ids->elements : 1, sizeof *it->heads);
    rep = calloc(3 * ids->elements + 1, sizeof *rep);
    if (!it->heads || !rep) {
        e = vd_seterr(errstr, errstr_size, VD_ERR_NOMEM, "out of memory");
        goto done;
    }
    size_t per = it->with_files ? 3 : 2;
    for (size_t i = 0; i < ids->elements; i++) {
        const redisReply *id = ids->element[i];
        if (id->type != REDIS_REPLY_STRING || !vd_id_valid(id->str, id->len)) {
            /* Not an id this model can name a key with: validate reports it. */
            vd_log(VD_LOG_WARN, "skipping invalid id in the document index", "key=%s", kdocs);
            continue;
        }
        iter_head *h = &it->heads[it->nheads++];
        memcpy(h->id, id->str, id->len);
        h->id[id->len] = 0;
        size_t kl = vd__key_doc(key, it->ns, h->id);
        const char *a1[2] = {"HGETALL", key};
        size_t l1[2] = {7, kl};
        if ((e = vd__store_append(s, 2, a1, l1, errstr, errstr_size)))
            goto done;
        kl = vd__key_zset(key, it->ns, h->id);
        const char *a2[5] = {"ZRANGE", key, "0", "-1", "WITHSCORES"};
        size_t l2[5] = {6, kl, 1, 2, 10};
        if ((e = vd__store_append(s, 5, a2, l2, errstr, errstr_size)))
            goto done;
        if (it->with_files) {
            kl = vd__key_file(key, it->ns, h->id);
            const char *a3[2] = {"STRLEN", key};
            size_t l3[2] = {6, kl};
            if ((e = vd__store_append(s, 2, a3, l3, errstr, errstr_size)))
                goto done;
        }
        nrep += per;
    }
    if ((e = vd__store_read(s, nrep, rep, errstr, errstr_size)))
        goto done;
    for (size_t i = 0; i < it->nheads; i++) {
        iter_head *h = &it->heads[i];
        h->doc = rep[per * i];
        h->zset = rep[per * i + 1];
        rep[per * i] = rep[per * i + 1] = NULL;
        if (it->with_files) {
            redisReply *fl = rep[per * i + 2];
            if (fl->type == REDIS_REPLY_INTEGER)
                h->file_len = fl->integer;
            else if (fl->type != REDIS_REPLY_ERROR || strncmp(fl->str, "WRONGTYPE", 9) != 0) {
                vd__key_file(key, it->ns, h->id);
                e = vd__reply_err(fl, "STRLEN", key, errstr, errstr_size);
                goto done;
            } else {
                /* A file key of the wrong type: let GET report it. */
                h->file_len = 1;
            }
        }
    }
done:
    if (rep) {
        vd__replies_free(rep, nrep);
        free(rep);
    }
    freeReplyObject(r);
    return e;
}

/* Number of chunks a head lists (0 when the zset reply is not an array). */
static size_t head_nchunks(const iter_head *h) {
    return h->zset->type == REDIS_REPLY_ARRAY ? h->zset->elements / 2 : 0;
}

static bool head_present(const iter_head *h) {
    /* A document whose hash is gone is skipped; an error reply is not. */
    return !(h->doc->type == REDIS_REPLY_ARRAY && h->doc->elements == 0);
}

/* Reads the chunks and files of the next window of heads into it->ready. */
static vd_err iter_load_window(vd_store_iter *it, char *errstr, size_t errstr_size) {
    vd_store *s = it->s;
    size_t first = it->hpos, last = first, nch = 0;
    unsigned long long fbytes = 0;
    while (last < it->nheads) {
        const iter_head *h = &it->heads[last];
        if (!head_present(h)) {
            last++;
            continue;
        }
        size_t c = head_nchunks(h);
        unsigned long long f = it->with_files && h->file_len > 0 ? (unsigned long long)h->file_len : 0;
        if (last > first && (nch + c > ITER_WINDOW_CHUNKS || fbytes + f > ITER_WINDOW_FILE_BYTES))
            break;
        nch += c;
        fbytes += f;
        last++;
    }
    it->hpos = last;

    size_t n = last - first;
    vd_err e = VD_ERR_OK;
    char key[VD__KEY_MAX];
    redisReply **rep = calloc(nch + n + 1, sizeof *rep);
    redisReply **slot = calloc(nch + n + 1, sizeof *slot); /* per chunk / file, or NULL */
    it->ready = calloc(n ? n : 1, sizeof *it->ready);
    size_t nrep = 0;
    if (!rep || !slot || !it->ready) {
        e = vd_seterr(errstr, errstr_size, VD_ERR_NOMEM, "out of memory");
        goto done;
    }
    /* Send: HGETALL of every chunk key, then GET of the file. */
    for (size_t i = first; i < last; i++) {
        const iter_head *h = &it->heads[i];
        if (!head_present(h))
            continue;
        for (size_t j = 0; j < head_nchunks(h); j++) {
            const redisReply *m = h->zset->element[2 * j];
            size_t kl = m->type == REDIS_REPLY_STRING
                            ? vd__key_chunk(key, it->ns, h->id, m->str, m->len)
                            : 0;
            if (!kl)
                continue;
            const char *argv[2] = {"HGETALL", key};
            size_t lens[2] = {7, kl};
            if ((e = vd__store_append(s, 2, argv, lens, errstr, errstr_size)))
                goto done;
            nrep++;
        }
        if (it->with_files && h->file_len > 0) {
            size_t kl = vd__key_file(key, it->ns, h->id);
            const char *argv[2] = {"GET", key};
            size_t lens[2] = {3, kl};
            if ((e = vd__store_append(s, 2, argv, lens, errstr, errstr_size)))
                goto done;
            nrep++;
        }
    }
    if ((e = vd__store_read(s, nrep, rep, errstr, errstr_size))) {
        nrep = 0;
        goto done;
    }
    /* Build, in the same order. */
    size_t k = 0;
    for (size_t i = first; i < last; i++) {
        iter_head *h = &it->heads[i];
        if (!head_present(h))
            continue;
        size_t c = head_nchunks(h);
        memset(slot, 0, (c + 1) * sizeof *slot);
        for (size_t j = 0; j < c; j++) {
            const redisReply *m = h->zset->element[2 * j];
            if (m->type == REDIS_REPLY_STRING && vd__key_chunk(key, it->ns, h->id, m->str, m->len))
                slot[j] = rep[k++];
        }
        const redisReply *file = NULL;
        if (it->with_files && h->file_len > 0)
            file = rep[k++];
        vd_docgroup *g = &it->ready[it->nready];
        e = vd__group_build(it->ns, h->id, h->doc, h->zset, slot, c, file, g, errstr,
                            errstr_size);
        if (e == VD_ERR_NOT_FOUND) {
            vd_docgroup_clear(g);
            e = VD_ERR_OK;
            continue;
        }
        if (e) {
            vd_docgroup_clear(g);
            goto done;
        }
        it->nready++;
    }
done:
    if (rep) {
        vd__replies_free(rep, nrep);
        free(rep);
    }
    free(slot);
    /* The heads of this window are no longer needed. */
    for (size_t i = first; i < last; i++) {
        if (it->heads[i].doc)
            freeReplyObject(it->heads[i].doc);
        if (it->heads[i].zset)
            freeReplyObject(it->heads[i].zset);
        it->heads[i].doc = it->heads[i].zset = NULL;
    }
    return e;
}

vd_err vd_store_iter_next(vd_store_iter *it, vd_docgroup *g, bool *done, char *errstr,
                          size_t errstr_size) {
    vd_err e;
    *done = false;
    vd_docgroup_clear(g);
    if (it->err)
        return vd_seterr(errstr, errstr_size, it->err, "%s", it->errmsg);
    for (;;) {
        if (it->rpos < it->nready) {
            *g = it->ready[it->rpos];
            memset(&it->ready[it->rpos], 0, sizeof it->ready[it->rpos]);
            it->rpos++;
            return VD_ERR_OK;
        }
        ready_free(it);
        if (it->hpos < it->nheads) {
            if ((e = iter_load_window(it, it->errmsg, sizeof it->errmsg)))
                break;
            continue;
        }
        heads_free(it);
        if (it->scan_done) {
            *done = true;
            return VD_ERR_OK;
        }
        if ((e = vd__store_ready(it->s, it->errmsg, sizeof it->errmsg)) ||
            (e = iter_load_batch(it, it->errmsg, sizeof it->errmsg)))
            break;
    }
    it->err = e;
    return vd_seterr(errstr, errstr_size, e, "%s", it->errmsg);
}
