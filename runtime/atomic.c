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

int rt_write_atomic(const char *path, const void *const *parts, const size_t *sizes,
                    int nparts, char *err, size_t errlen)
{
	/* the file a link names (a dangling link is replaced), then the temporary
	 * file's name and room for the directory's */
	struct stat st;
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
	int exists = !stat(path, &st), keep_mode = exists && S_ISREG(st.st_mode);
	int fd = -1;
	if (exists && !S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)) {
		/* a device or a pipe (/dev/null, /dev/stdout) is written as it is: a
		 * renamed temporary file would replace /dev/null itself */
		int rc = -1;
		fd = open(path, O_WRONLY | O_CLOEXEC);
		if (fd < 0)
			rt_fail(err, errlen, shown, "cannot open: %s", strerror(errno));
		for (int i = 0; fd >= 0 && i < nparts; i++)
			if (sizes[i] && write_all(fd, parts[i], sizes[i])) {
				rt_fail(err, errlen, shown, "cannot write: %s",
				        strerror(errno));
				goto device_done;
			}
		rc = fd >= 0 ? 0 : -1;
	device_done:
		if (fd >= 0 && close(fd) && !rc)
			rc = rt_fail(err, errlen, shown, "cannot write: %s",
			             strerror(errno));
		rt_free(tmp);
		rt_free(real);
		return rc;
	}
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
