/* A minimal fanotify permission listener that allows everything: the
 * baseline the Python guard is measured against. Marks the mount holding
 * argv[1] for FAN_OPEN_PERM, writes argv[2] once the mark is in place, and
 * answers every event with FAN_ALLOW until killed. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/fanotify.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: %s DIR READY-FILE\n", argv[0]);
		return 2;
	}
	int fd = fanotify_init(FAN_CLASS_CONTENT | FAN_CLOEXEC | FAN_UNLIMITED_QUEUE,
			       O_RDONLY | O_LARGEFILE | O_CLOEXEC);
	if (fd < 0 || fanotify_mark(fd, FAN_MARK_ADD | FAN_MARK_MOUNT, FAN_OPEN_PERM,
				    AT_FDCWD, argv[1]) < 0) {
		perror("fanotify");
		return 1;
	}
	int ready = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (ready >= 0)
		close(ready);

	char buf[64 * 1024] __attribute__((aligned(8)));
	pid_t self = getpid();
	for (;;) {
		ssize_t len = read(fd, buf, sizeof(buf));
		if (len < 0) {
			if (errno == EINTR)
				continue;
			perror("read");
			return 1;
		}
		struct fanotify_event_metadata *m = (void *)buf;
		for (; FAN_EVENT_OK(m, len); m = FAN_EVENT_NEXT(m, len)) {
			if (m->fd < 0)
				continue;
			struct fanotify_response r = { .fd = m->fd, .response = FAN_ALLOW };
			(void)self;
			if (write(fd, &r, sizeof(r)) != sizeof(r))
				perror("write");
			close(m->fd);
		}
	}
}
