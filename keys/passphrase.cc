#include "keys/passphrase.h"

#include <fcntl.h>
#include <signal.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace portcullis::keys {

namespace {

constexpr size_t kMaxPassphrase = 4096;

// Terminal state to restore if a signal arrives while echo is off.
struct termios g_saved_termios;
volatile sig_atomic_t g_echo_off = 0;

void RestoreAndReraise(int sig) {
  if (g_echo_off) tcsetattr(STDIN_FILENO, TCSAFLUSH, &g_saved_termios);
  signal(sig, SIG_DFL);
  raise(sig);
}

// Reads one line from fd into a wiped buffer (newline, and a "\r" before it,
// stripped). Sets *empty_input when EOF came before any byte.
StatusOr<SecretBytes> ReadLine(int fd, const std::string& what, bool* empty_input) {
  *empty_input = false;
  SecretBytes buf(kMaxPassphrase + 1);
  size_t n = 0;
  bool got_any = false;
  while (true) {
    char c;
    ssize_t r = ::read(fd, &c, 1);
    if (r < 0) {
      if (errno == EINTR) continue;
      return Status::IoError("reading " + what + ": " + std::strerror(errno));
    }
    if (r == 0) {
      *empty_input = !got_any;
      break;
    }
    got_any = true;
    if (c == '\n') break;
    if (n == kMaxPassphrase) return Status::InvalidArgument(what + ": passphrase longer than 4096 bytes");
    buf.data()[n++] = static_cast<unsigned char>(c);
  }
  if (n > 0 && buf.data()[n - 1] == '\r') --n;
  buf.Truncate(n);
  return buf;
}

// Prompts on stderr and reads a line from the terminal on stdin with echo off.
StatusOr<SecretBytes> PromptNoEcho(const std::string& prompt) {
  struct termios old_t;
  if (tcgetattr(STDIN_FILENO, &old_t) != 0) {
    return Status::IoError(std::string("reading terminal settings: ") + std::strerror(errno));
  }
  struct termios new_t = old_t;
  new_t.c_lflag &= ~static_cast<tcflag_t>(ECHO);
  new_t.c_lflag |= ECHONL;
  g_saved_termios = old_t;
  struct sigaction sa, old_int, old_term, old_hup;
  std::memset(&sa, 0, sizeof sa);
  sa.sa_handler = RestoreAndReraise;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, &old_int);
  sigaction(SIGTERM, &sa, &old_term);
  sigaction(SIGHUP, &sa, &old_hup);
  (void)!::write(STDERR_FILENO, prompt.data(), prompt.size());
  g_echo_off = 1;
  tcsetattr(STDIN_FILENO, TCSAFLUSH, &new_t);
  bool eof = false;
  auto line = ReadLine(STDIN_FILENO, "passphrase from terminal", &eof);
  tcsetattr(STDIN_FILENO, TCSAFLUSH, &old_t);
  g_echo_off = 0;
  sigaction(SIGINT, &old_int, nullptr);
  sigaction(SIGTERM, &old_term, nullptr);
  sigaction(SIGHUP, &old_hup, nullptr);
  if (line.ok() && eof) return Status::InvalidArgument("no passphrase entered at the prompt (end of input)");
  return line;
}

// Copies the environment variable `name` into *out; false when it is unset.
bool FromEnv(const char* name, SecretBytes* out) {
  const char* v = std::getenv(name);
  if (v == nullptr) return false;
  *out = SecretBytes(v, std::strlen(v));
  return true;
}

}  // namespace

StatusOr<SecretBytes> ReadPassphraseFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    if (err == ENOENT) return Status::NotFound("passphrase file " + path + ": no such file");
    return Status::IoError("opening passphrase file " + path + ": " + std::strerror(err));
  }
  bool empty_file = false;  // an empty file is an explicit empty passphrase
  auto line = ReadLine(fd, "passphrase file " + path, &empty_file);
  ::close(fd);
  return line;
}

StatusOr<SecretBytes> GetPassphrase(const PassphraseRequest& request) {
  SecretBytes pass;
  if (FromEnv("PORTCULLIS_PASSWORD", &pass)) return pass;
  if (FromEnv("COSIGN_PASSWORD", &pass)) return pass;
  if (!request.passphrase_file.empty()) return ReadPassphraseFile(request.passphrase_file);
  if (isatty(STDIN_FILENO)) {
    PC_ASSIGN_OR_RETURN(SecretBytes first, PromptNoEcho(request.prompt));
    if (first.empty()) return Status::InvalidArgument("empty passphrase at the prompt");
    if (request.confirm) {
      PC_ASSIGN_OR_RETURN(SecretBytes second, PromptNoEcho("Enter password for private key again: "));
      if (!first.Equals(second)) return Status::InvalidArgument("passphrases do not match");
    }
    return first;
  }
  return Status::InvalidArgument("no passphrase: set PORTCULLIS_PASSWORD or COSIGN_PASSWORD, or pass --passphrase-file");
}

}  // namespace portcullis::keys
