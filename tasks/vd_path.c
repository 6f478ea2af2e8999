/*
 * vd_path.c - client-given artifact paths, resolved inside the backup volume.
 *
 * A path is accepted when it is relative, made of non-empty components that
 * are neither "." nor "..", holds no control characters, its parent directory
 * exists and resolves (symlinks followed) inside realpath(backup_dir), and,
 * when the last component exists and is a symlink, its target also resolves
 * inside the volume.
 */
#include "tasks_int.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* @returns true when path equals base or lies below it. */
static bool path_under(const char *base, const char *path) {
    size_t n = strlen(base);
    if (n == 1 && base[0] == '/')
        return path[0] == '/';
    return strncmp(base, path, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

static vd_err check_components(const char *rel, char *errstr, size_t errstr_size) {
    if (!rel || !*rel)
        return vd_seterr(errstr, errstr_size, VD_ERR_PATH, "empty artifact path");
    if (rel[0] == '/')
        return vd_seterr(errstr, errstr_size, VD_ERR_PATH,
                         "artifact path must be relative to the backup volume: %s", rel);
    if (strlen(rel) >= PATH_MAX)
        return vd_seterr(errstr, errstr_size, VD_ERR_PATH, "artifact path too long");
    const char *c = rel;
    while (*c) {
        const char *end = strchr(c, '/');
        size_t n = end ? (size_t)(end - c) : strlen(c);
        if (n == 0)
            return vd_seterr(errstr, errstr_size, VD_ERR_PATH,
                             "artifact path has an empty component: %s", rel);
        if ((n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.'))
            return vd_seterr(errstr, errstr_size, VD_ERR_PATH,
                             "artifact path may not contain '.' or '..': %s", rel);
        for (size_t i = 0; i < n; i++) {
            unsigned char ch = (unsigned char)c[i];
            if (ch < 0x20 || ch == 0x7f)
                return vd_seterr(errstr, errstr_size, VD_ERR_PATH,
                                 "artifact path holds a control character");
        }
        if (!end)
            break;
        c = end + 1;
        if (!*c)
            return vd_seterr(errstr, errstr_size, VD_ERR_PATH,
                             "artifact path ends with '/': %s", rel);
    }
    return VD_ERR_OK;
}

vd_err vd_path_resolve(const char *backup_dir, const char *rel, char *out, size_t out_size,
                       char *errstr, size_t errstr_size) {
    if (!backup_dir || !*backup_dir || !out || out_size == 0)
        return vd_seterr(errstr, errstr_size, VD_ERR_INVALID_ARG, "no backup directory");
    out[0] = '\0';
    vd_err e = check_components(rel, errstr, errstr_size);
    if (e)
        return e;

    char base[PATH_MAX];
    if (!realpath(backup_dir, base))
        return vd_seterr(errstr, errstr_size, VD_ERR_IO, "backup directory %s: %s",
                         backup_dir, strerror(errno));

    /* The parent directory of the last component, inside the volume. */
    const char *slash = strrchr(rel, '/');
    const char *leaf = slash ? slash + 1 : rel;
    char parent[PATH_MAX];
    if (slash) {
        char joined[PATH_MAX * 2];
        snprintf(joined, sizeof joined, "%s/%.*s", base, (int)(slash - rel), rel);
        if (!realpath(joined, parent)) {
            int err = errno;
            if (err == ENOENT || err == ENOTDIR)
                return vd_seterr(errstr, errstr_size, VD_ERR_NOT_FOUND,
                                 "directory of %s does not exist in the backup volume", rel);
            return vd_seterr(errstr, errstr_size, VD_ERR_IO, "resolve %s: %s", rel,
                             strerror(err));
        }
        if (!path_under(base, parent))
            return vd_seterr(errstr, errstr_size, VD_ERR_PATH,
                             "artifact path escapes the backup volume: %s", rel);
        struct stat st;
        if (stat(parent, &st) != 0 || !S_ISDIR(st.st_mode))
            return vd_seterr(errstr, errstr_size, VD_ERR_NOT_FOUND,
                             "directory of %s is not a directory", rel);
    } else {
        snprintf(parent, sizeof parent, "%s", base);
    }

    int n = snprintf(out, out_size, "%s/%s", strcmp(parent, "/") == 0 ? "" : parent, leaf);
    if (n < 0 || (size_t)n >= out_size) {
        out[0] = '\0';
        return vd_seterr(errstr, errstr_size, VD_ERR_PATH, "artifact path too long");
    }

    /* An existing symlink as the last component must stay inside too. */
    struct stat lst;
    if (lstat(out, &lst) == 0 && S_ISLNK(lst.st_mode)) {
        char target[PATH_MAX];
        if (!realpath(out, target) || !path_under(base, target)) {
            out[0] = '\0';
            return vd_seterr(errstr, errstr_size, VD_ERR_PATH,
                             "artifact path is a symlink leading outside the backup volume "
                             "(or dangling): %s",
                             rel);
        }
    }
    return VD_ERR_OK;
}
