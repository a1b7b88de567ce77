/*
 * The C baseline for the watch benchmark: the least a fanotify consumer can
 * do. One group with FAN_UNLIMITED_QUEUE and a mount mark (fd mode) or a
 * filesystem mark (fid mode) on PATH;
 * prints "ready", waits for the first event, then reads 256 KiB at a time
 * until the queue is empty (EAGAIN) and prints its counts and peak RSS.
 *
 * usage: consumer fd|fid PATH
 *   fd   reports file descriptors (the mode fatrace uses): each event's
 *        path is read with readlink("/proc/self/fd/N"), then the fd is
 *        closed. Sees opens, closes, modifications and accesses only.
 *   fid  the flags fanwatch's privileged watcher uses (FAN_REPORT_DFID_NAME
 *        | FAN_REPORT_FID | FAN_REPORT_TARGET_FID | FAN_REPORT_PIDFD) and
 *        the same event mask: walks every info record, closes each pidfd,
 *        resolves no path. Sees creations, deletions and renames too.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fanotify.h>
#include <unistd.h>

#ifndef FAN_REPORT_TARGET_FID
#define FAN_REPORT_TARGET_FID 0x00001000
#endif
#ifndef FAN_REPORT_PIDFD
#define FAN_REPORT_PIDFD 0x00000080
#endif
#ifndef FAN_RENAME
#define FAN_RENAME 0x10000000
#endif
#ifndef FAN_EVENT_INFO_TYPE_PIDFD
#define FAN_EVENT_INFO_TYPE_PIDFD 4
#endif

#define FD_EVENTS (FAN_ACCESS | FAN_MODIFY | FAN_CLOSE_WRITE | FAN_CLOSE_NOWRITE | \
		   FAN_OPEN | FAN_OPEN_EXEC)
#define FID_EVENTS (FD_EVENTS | FAN_ATTRIB | FAN_CREATE | FAN_DELETE | FAN_RENAME | \
		    FAN_DELETE_SELF | FAN_MOVE_SELF | FAN_ONDIR)

static char buf[256 * 1024] __attribute__((aligned(8)));

/* VmHWM of this process: the peak resident set, in KiB. */
static long peak_rss_kib(void)
{
	char line[256];
	long kib = -1;
	FILE *f = fopen("/proc/self/status", "r");

	while (f && fgets(line, sizeof line, f))
		if (sscanf(line, "VmHWM: %ld", &kib) == 1)
			break;
	if (f)
		fclose(f);
	return kib;
}

int main(int argc, char **argv)
{
	if (argc != 3 || (strcmp(argv[1], "fd") && strcmp(argv[1], "fid"))) {
		fprintf(stderr, "usage: consumer fd|fid PATH\n");
		return 2;
	}
	int fid = strcmp(argv[1], "fid") == 0;
	unsigned flags = FAN_CLASS_NOTIF | FAN_CLOEXEC | FAN_NONBLOCK | FAN_UNLIMITED_QUEUE;
	if (fid)
		flags |= FAN_REPORT_DFID_NAME | FAN_REPORT_FID | FAN_REPORT_TARGET_FID |
			 FAN_REPORT_PIDFD;
	int group = fanotify_init(flags, O_RDONLY | O_LARGEFILE | O_CLOEXEC);
	if (group < 0) {
		perror("consumer: fanotify_init");
		return 1;
	}
	/* fd mode: a mount mark, as `fanwatch watch --mount` places. */
	if (fanotify_mark(group, FAN_MARK_ADD | (fid ? FAN_MARK_FILESYSTEM : FAN_MARK_MOUNT),
			  fid ? FID_EVENTS : FD_EVENTS, AT_FDCWD, argv[2]) < 0) {
		perror("consumer: fanotify_mark");
		return 1;
	}
	printf("ready\n");
	fflush(stdout);

	struct pollfd pfd = { .fd = group, .events = POLLIN };
	while (poll(&pfd, 1, -1) < 0)
		if (errno != EINTR) {
			perror("consumer: poll");
			return 1;
		}

	long events = 0, overflows = 0, unresolved = 0, bytes = 0;
	char link[64], path[PATH_MAX];
	for (;;) {
		ssize_t len = read(group, buf, sizeof buf);
		if (len < 0 && errno == EINTR)
			continue;
		if (len < 0 && errno == EAGAIN)
			break;
		if (len < 0) {
			perror("consumer: read");
			return 1;
		}
		bytes += len;
		struct fanotify_event_metadata *m = (void *)buf;
		for (; FAN_EVENT_OK(m, len); m = FAN_EVENT_NEXT(m, len)) {
			events++;
			if (m->mask & FAN_Q_OVERFLOW)
				overflows++;
			if (m->fd >= 0) {
				snprintf(link, sizeof link, "/proc/self/fd/%d", m->fd);
				if (readlink(link, path, sizeof path) < 0)
					unresolved++;
				close(m->fd);
			}
			char *info = (char *)m + m->metadata_len;
			char *end = (char *)m + m->event_len;
			while (info + sizeof(struct fanotify_event_info_header) <= end) {
				struct fanotify_event_info_header *h = (void *)info;
				if (h->len == 0)
					break;
				if (h->info_type == FAN_EVENT_INFO_TYPE_PIDFD) {
					int pidfd = *(int *)(info + sizeof *h);
					if (pidfd >= 0)
						close(pidfd);
				}
				info += h->len;
			}
		}
	}
	printf("events=%ld overflows=%ld unresolved=%ld bytes=%ld vmhwm_kib=%ld\n",
	       events, overflows, unresolved, bytes, peak_rss_kib());
	return 0;
}
