/* Crash-safe file writes, shared by every saver in the runtime. The bytes go to a new
 * temporary file next to the target (same directory, so the rename cannot cross file
 * systems), created with O_EXCL under a name made of the target's, the process id and
 * a counter; the file is fsync'd and closed, renamed over the target, and the
 * directory is fsync'd so the rename itself survives a crash. Readers therefore see
 * either the old file or the complete new one, never a partial write. Any failure up
 * to the rename removes the temporary file and leaves an existing target untouched.
 * A target that is a symbolic link is written through it (the file it names is
 * replaced, the link kept), and a file replaced keeps its permission bits. */
#define _XOPEN_SOURCE 700 /* realpath, and POSIX 2008 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "descent/runtime.h"
#include "mem.h"

#define WRITE_MAX ((size_t)1 << 30) /* bytes per write(2) call */

static atomic_uint counter;

static int write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t k = write(fd, p, n < WRITE_MAX ? n : WRITE_MAX);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

/* Makes the rename durable. File systems that cannot sync a directory say EINVAL. dir
 * has room for path's directory name (allocated before anything is written, so that
 * running out of memory cannot fail a write after its rename). */
static int sync_dir(const char *path, char *dir, char *err, size_t errlen)
{
	const char *slash = strrchr(path, '/');
	size_t n = slash ? (size_t)(slash - path) : 1;
	if (!slash)
		strcpy(dir, ".");
	else if (n == 0)
		strcpy(dir, "/");
	else {
		memcpy(dir, path, n);
		dir[n] = 0;
	}
	int rc = 0, fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || (fsync(fd) && errno != EINVAL))
		rc = rt_fail(err, errlen, path,
		             "written, but cannot sync its directory %s: %s", dir,
		             strerror(errno));
	if (fd >= 0)
		close(fd);
	return rc;
}

/* Whether path names a file descriptor rather than a file: /dev/fd/N, /dev/stdout,
 * /proc/self/fd/N, or a link that leads there. Such a path reaches whatever the
 * caller's descriptor is (a pipe, a file the shell opened with >>, a deleted file), so
 * it is written in place: a temporary file renamed over it would replace the link
 * itself (as root, /dev/stdout) or, through realpath, the file the shell opened. */
static int names_fd(const char *path)
{
	char buf[PATH_MAX];
	snprintf(buf, sizeof buf, "%s", path);
	for (int hops = 0; hops < 8; hops++) {
		if (!strncmp(buf, "/dev/fd/", 8) || !strncmp(buf, "/dev/std", 8) ||
		    !strncmp(buf, "/proc/", 6))
			return 1;
		struct stat st;
		if (lstat(buf, &st) || !S_ISLNK(st.st_mode))
			return 0;
		char to[PATH_MAX];
		ssize_t n = readlink(buf, to, sizeof to - 1);
		if (n <= 0)
			return 0;
		to[n] = 0;
		if (to[0] == '/') {
			snprintf(buf, sizeof buf, "%s", to);
		} else { /* relative to the link's directory */
			char *slash = strrchr(buf, '/');
			size_t k = slash ? (size_t)(slash - buf) + 1 : 0;
			if (k + (size_t)n >= sizeof buf)
				return 0;
			memcpy(buf + k, to, (size_t)n + 1);
		}
	}
	return 0;
}

/* Writes the parts to a file that is not a regular one (a device, a pipe) or to a
 * descriptor's path (names_fd) as it is, appended as a shell's >> would. */
static int write_in_place(const char *path, const void *const *parts, const size_t *sizes,
                          int nparts, char *err, size_t errlen)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
	if (fd < 0)
		return rt_fail(err, errlen, path, "cannot open: %s", strerror(errno));
	int rc = 0;
	for (int i = 0; i < nparts && !rc; i++)
		if (sizes[i] && write_all(fd, parts[i], sizes[i]))
			rc = rt_fail(err, errlen, path, "cannot write: %s",
			             strerror(errno));
	if (close(fd) && !rc)
		rc = rt_fail(err, errlen, path, "cannot write: %s", strerror(errno));
	return rc;
}

/* A file being written: its temporary file, written, synced and closed, to be renamed
 * over path (the file a link names). tmp and dir share one allocation. */
typedef struct Pending {
	char *tmp, *dir, *real;
	const char *path;
} Pending;

static void pending_free(Pending *w, int unlink_tmp)
{
	if (w->tmp && unlink_tmp)
		unlink(w->tmp);
	rt_free(w->tmp);
	rt_free(w->real);
	memset(w, 0, sizeof *w);
}

/* The first half of a write: the bytes in a temporary file next to path, synced. */
static int prepare(Pending *w, const char *path, const void *const *parts,
                   const size_t *sizes, int nparts, char *err, size_t errlen)
{
	struct stat st;
	memset(w, 0, sizeof *w);
	/* the file a link names (a dangling link is replaced), then the temporary
	 * file's name and room for the directory's */
	char *real = w->real = rt_alloc(PATH_MAX);
	if (!real)
		return rt_fail(err, errlen, path, "out of memory");
	const char *shown = path;
	if (!lstat(path, &st) && S_ISLNK(st.st_mode) && realpath(path, real))
		path = real;
	w->path = path;
	size_t tlen = strlen(path) + 48;
	char *tmp = rt_alloc(2 * tlen);
	if (!tmp) {
		pending_free(w, 0);
		return rt_fail(err, errlen, shown, "out of memory");
	}
	w->dir = tmp + tlen;
	int keep_mode = !stat(path, &st) && S_ISREG(st.st_mode);
	int fd = -1;
	for (int tries = 0; tries < 100; tries++) {
		snprintf(tmp, tlen, "%s.tmp-%ld-%u", path, (long)getpid(),
		         atomic_fetch_add(&counter, 1));
		fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
		if (fd >= 0 || errno != EEXIST)
			break;
	}
	if (fd < 0) {
		rt_fail(err, errlen, path, "cannot create temporary file %s: %s", tmp,
		        strerror(errno));
		rt_free(tmp);
		pending_free(w, 0);
		return -1;
	}
	w->tmp = tmp;
	for (int i = 0; i < nparts; i++)
		if (sizes[i] && write_all(fd, parts[i], sizes[i])) {
			rt_fail(err, errlen, path, "cannot write temporary file %s: %s",
			        tmp, strerror(errno));
			goto fail;
		}
	if (keep_mode && fchmod(fd, st.st_mode & 0777)) { /* not setuid/gid */
		rt_fail(err, errlen, path, "cannot set the permissions of %s: %s", tmp,
		        strerror(errno));
		goto fail;
	}
	if (fsync(fd)) {
		rt_fail(err, errlen, path, "cannot sync temporary file %s: %s", tmp,
		        strerror(errno));
		goto fail;
	}
	int closed = close(fd);
	fd = -1;
	if (closed) {
		rt_fail(err, errlen, path, "cannot write temporary file %s: %s", tmp,
		        strerror(errno));
		goto fail;
	}
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	pending_free(w, 1);
	return -1;
}

/* The second half: the rename, made durable. */
static int commit(Pending *w, char *err, size_t errlen)
{
	if (rename(w->tmp, w->path)) {
		rt_fail(err, errlen, w->path,
		        "cannot rename temporary file %s over it: %s", w->tmp,
		        strerror(errno));
		pending_free(w, 1);
		return -1;
	}
	int rc = sync_dir(w->path, w->dir, err, errlen);
	pending_free(w, 0);
	return rc;
}

/* a path written in place, not through a temporary file: a descriptor's name or a
 * file that is not regular (a FIFO, a device) */
static int in_place(const char *path)
{
	struct stat st;
	return names_fd(path) ||
	       (!stat(path, &st) && !S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode));
}

int rt_write_atomic(const char *path, const void *const *parts, const size_t *sizes,
                    int nparts, char *err, size_t errlen)
{
	if (!path)
		return rt_error(err, errlen, "rt_write_atomic: the path is NULL");
	/* decided on the path as given, before any link is resolved */
	if (in_place(path))
		return write_in_place(path, parts, sizes, nparts, err, errlen);
	Pending w;
	return prepare(&w, path, parts, sizes, nparts, err, errlen)
	           ? -1
	           : commit(&w, err, errlen);
}

int rt_write_atomic_all(const rt_output *outs, int n, char *err, size_t errlen)
{
	enum { MAXOUT = 8 };
	Pending w[MAXOUT];
	char flat[MAXOUT]; /* written in place */
	if (n > MAXOUT)
		return rt_fail(err, errlen, outs[0].path, "more than %d files at once",
		               MAXOUT);
	/* those written in place (a FIFO, /dev/stdout) cannot be taken back: first, so
	 * that one that fails (/dev/full), or a reader that goes away (SIGPIPE), leaves
	 * every regular file as it was and no temporary file */
	int rc = 0;
	for (int i = 0; i < n; i++) {
		flat[i] = (char)in_place(outs[i].path);
		if (flat[i] && !rc)
			rc = write_in_place(outs[i].path, outs[i].parts, outs[i].sizes,
			                    outs[i].nparts, err, errlen);
	}
	if (rc)
		return rc;
	for (int i = 0; i < n; i++) {
		memset(&w[i], 0, sizeof w[i]);
		if (!flat[i] && prepare(&w[i], outs[i].path, outs[i].parts, outs[i].sizes,
		                        outs[i].nparts, err, errlen)) {
			while (i-- > 0) /* one failed: no regular file is written */
				pending_free(&w[i], 1);
			return -1;
		}
	}
	for (int i = 0; i < n; i++) /* every one ready: the renames */
		if (!flat[i] && !rc)
			rc = commit(&w[i], err, errlen);
		else if (!flat[i])
			pending_free(&w[i], 1);
	return rc;
}
