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

int rt_write_atomic(const char *path, const void *const *parts, const size_t *sizes,
                    int nparts, char *err, size_t errlen)
{
	struct stat st;
	/* decided on the path as given, before any link is resolved */
	if (names_fd(path) ||
	    (!stat(path, &st) && !S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)))
		return write_in_place(path, parts, sizes, nparts, err, errlen);
	/* the file a link names (a dangling link is replaced), then the temporary
	 * file's name and room for the directory's */
	char *real = rt_alloc(PATH_MAX);
	if (!real)
		return rt_fail(err, errlen, path, "out of memory");
	const char *shown = path;
	if (!lstat(path, &st) && S_ISLNK(st.st_mode) && realpath(path, real))
		path = real;
	size_t tlen = strlen(path) + 48;
	char *tmp = rt_alloc(2 * tlen);
	if (!tmp) {
		rt_free(real);
		return rt_fail(err, errlen, shown, "out of memory");
	}
	char *dir = tmp + tlen;
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
		rt_free(real);
		return -1;
	}
	int rc = -1;
	for (int i = 0; i < nparts; i++)
		if (sizes[i] && write_all(fd, parts[i], sizes[i])) {
			rt_fail(err, errlen, path, "cannot write temporary file %s: %s",
			        tmp, strerror(errno));
			goto fail_open;
		}
	if (keep_mode && fchmod(fd, st.st_mode & 0777)) { /* not setuid/gid */
		rt_fail(err, errlen, path, "cannot set the permissions of %s: %s", tmp,
		        strerror(errno));
		goto fail_open;
	}
	if (fsync(fd)) {
		rt_fail(err, errlen, path, "cannot sync temporary file %s: %s", tmp,
		        strerror(errno));
		goto fail_open;
	}
	int closed = close(fd);
	fd = -1;
	if (closed) {
		rt_fail(err, errlen, path, "cannot write temporary file %s: %s", tmp,
		        strerror(errno));
		goto fail_open;
	}
	if (rename(tmp, path)) {
		rt_fail(err, errlen, path, "cannot rename temporary file %s over it: %s",
		        tmp, strerror(errno));
		goto fail_open;
	}
	rc = sync_dir(path, dir, err, errlen);
	rt_free(tmp);
	rt_free(real);
	return rc;
fail_open:
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	rt_free(tmp);
	rt_free(real);
	return rc;
}
