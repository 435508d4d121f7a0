// vipgate's shared-memory mapping: a file (under /dev/shm) mapped MAP_SHARED and handed to
// JavaScript as one external ArrayBuffer, so the packet path's state outlives the process that
// wrote it (issue 9). The supervisor and every packet worker map the same file; a new process
// checks the region's header (src/shm/region.ts) before trusting anything in it.
//
// Why not mmap-io or shmmap from npm: mmap-io is C++ through nan with a node-gyp build (a second
// build system and a compiled dependency for ~40 lines of C), and shmmap maps System V segments
// by key, not a named file an operator can see, size and remove; neither adds anything here.
//
// Kept small on purpose: open, fstat, ftruncate when created, mmap, and a finalizer that unmaps.
// Errors are thrown as { code, message } (code: the errno's name), like afpacket.c.

#define _GNU_SOURCE
#include <node_api.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#define ARGS(n)                                                   \
  size_t argc = n;                                                \
  napi_value argv[n];                                             \
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);

static const char *errno_code(int e) {
  switch (e) {
    case ENOENT: return "ENOENT";
    case EACCES: return "EACCES";
    case EPERM: return "EPERM";
    case ENOSPC: return "ENOSPC";
    case ENOMEM: return "ENOMEM";
    case EINVAL: return "EINVAL";
    case EROFS: return "EROFS";
    case EISDIR: return "EISDIR";
    case EMFILE: return "EMFILE";
    case EFBIG: return "EFBIG";
    default: return "EIO";
  }
}

static napi_value throw_errno(napi_env env, const char *what, const char *path, int e) {
  char msg[512];
  snprintf(msg, sizeof msg, "shm: %s %s: %s", what, path, strerror(e));
  napi_throw_error(env, errno_code(e), msg);
  return NULL;
}

static void unmap_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  munmap(data, (size_t)(uintptr_t)hint);
}

static napi_value set_prop(napi_env env, napi_value obj, const char *name, napi_value v) {
  napi_set_named_property(env, obj, name, v);
  return obj;
}

// mapFile(path, bytes, create) -> { buffer, created, bytes }
// create: make the file (mode 0600) when absent and size it to `bytes` (ftruncate: zero pages,
// the state's initial value). An existing file is mapped at its own size, whatever `bytes` says:
// the caller's header check names the difference instead of this code truncating anything.
static napi_value js_map_file(napi_env env, napi_callback_info info) {
  ARGS(3);
  char path[4096];
  size_t plen = 0;
  double want = 0;
  bool create = false;
  if (napi_get_value_string_utf8(env, argv[0], path, sizeof path, &plen) != napi_ok || plen == 0 || plen >= sizeof path - 1 ||
      napi_get_value_double(env, argv[1], &want) != napi_ok || want < 0 || want > (double)(1ull << 40) ||
      napi_get_value_bool(env, argv[2], &create) != napi_ok) {
    napi_throw_error(env, "EINVAL", "shm: mapFile(path, bytes, create) needs a path, a size in bytes and a boolean");
    return NULL;
  }
  bool created = false;
  int fd = -1;
  if (create) {
    fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd >= 0) created = true;
    else if (errno != EEXIST) return throw_errno(env, "cannot create", path, errno);
  }
  if (fd < 0) {
    fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) return throw_errno(env, "cannot open", path, errno);
  }
  if (created) {
    // Allocate every page now: a tmpfs too small for the region (docker's 64 MiB /dev/shm, say)
    // fails here with ENOSPC and a message, instead of a SIGBUS the first time the packet path
    // touches a page past what the file system had room for. Where fallocate is not supported,
    // the file is only sized (its pages come on first touch).
    int r = posix_fallocate(fd, 0, (off_t)want);
    if (r == EOPNOTSUPP || r == EINVAL) r = ftruncate(fd, (off_t)want) != 0 ? errno : 0;
    if (r != 0) { close(fd); unlink(path); return throw_errno(env, "cannot size", path, r); }
  }
  struct stat st;
  if (fstat(fd, &st) != 0) { int e = errno; close(fd); return throw_errno(env, "cannot stat", path, e); }
  size_t size = (size_t)st.st_size;
  napi_value ab;
  if (size == 0) {
    // Nothing to map (a file left empty by a crash between create and ftruncate): an empty
    // buffer, so the header check reports the size instead of mmap failing with EINVAL.
    close(fd);
    void *none;
    napi_create_arraybuffer(env, 0, &none, &ab);
  } else {
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    int e = errno;
    close(fd); // the mapping keeps the file referenced
    if (p == MAP_FAILED) return throw_errno(env, "cannot map", path, e);
    // Huge pages where the file system offers them (a tmpfs mounted with huge=advise; huge=always
    // and within_size need no advice): a large flow table then costs a TLB entry per 2 MiB, not
    // per 4 KiB. Elsewhere (/dev/shm on Debian) this is a no-op, and an error here changes nothing.
    (void)madvise(p, size, MADV_HUGEPAGE);
    if (napi_create_external_arraybuffer(env, p, size, unmap_finalize, (void *)(uintptr_t)size, &ab) != napi_ok) {
      munmap(p, size);
      napi_throw_error(env, "ENOMEM", "shm: cannot expose the mapping to JavaScript");
      return NULL;
    }
  }
  napi_value out, b, n;
  napi_create_object(env, &out);
  set_prop(env, out, "buffer", ab);
  napi_get_boolean(env, created, &b);
  set_prop(env, out, "created", b);
  napi_create_double(env, (double)size, &n);
  set_prop(env, out, "bytes", n);
  return out;
}

// unmap(buffer): detach the ArrayBuffer, so every view over it reads as empty instead of
// touching unmapped memory; the finalizer then unmaps it (when V8 lets go of the backing store).
static napi_value js_unmap(napi_env env, napi_callback_info info) {
  ARGS(1);
  bool detached = false;
  if (napi_is_detached_arraybuffer(env, argv[0], &detached) == napi_ok && detached) return NULL; // already
  if (napi_detach_arraybuffer(env, argv[0]) != napi_ok) {
    napi_throw_error(env, "EINVAL", "shm: unmap needs a buffer made by mapFile");
  }
  return NULL;
}

// parentDeathSignal(sig): prctl(PR_SET_PDEATHSIG): the kernel sends `sig` to this process when
// the thread that started it dies, so a packet worker never outlives its supervisor (even on a
// SIGKILL of the supervisor, which gives the IPC channel no chance to say goodbye).
static napi_value js_parent_death_signal(napi_env env, napi_callback_info info) {
  ARGS(1);
  int32_t sig = 0;
  if (napi_get_value_int32(env, argv[0], &sig) != napi_ok || sig < 0 || sig >= NSIG) {
    napi_throw_error(env, "EINVAL", "shm: parentDeathSignal needs a signal number");
    return NULL;
  }
  if (prctl(PR_SET_PDEATHSIG, (unsigned long)sig) != 0) return throw_errno(env, "prctl(PR_SET_PDEATHSIG)", "", errno);
  return NULL;
}

NAPI_MODULE_INIT() {
  napi_property_descriptor d[] = {
    { "mapFile", NULL, js_map_file, NULL, NULL, NULL, napi_default, NULL },
    { "unmap", NULL, js_unmap, NULL, NULL, NULL, napi_default, NULL },
    { "parentDeathSignal", NULL, js_parent_death_signal, NULL, NULL, NULL, napi_default, NULL },
  };
  napi_define_properties(env, exports, sizeof d / sizeof d[0], d);
  return exports;
}
