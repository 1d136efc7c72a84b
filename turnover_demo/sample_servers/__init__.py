"""Sample source servers that speak the real protocols, for the demo and the integration tests.

- `sftp_server.SftpSampleServer`: an SFTP server (real OpenSSH `sshd` when running as root,
  an asyncssh server otherwise) that serves a local directory as the HRIS vendor's SFTP root.
- `lms_server.LmsSampleServer`: an xAPI 1.0.3 Learning Record Store (Statements resource) and a
  SCIM 2.0 user directory on one small threaded HTTP server.

Both can inject faults (dropped sessions, a hung or stopped server, HTTP errors, resets,
malformed pages, cursors that do not advance) so the clients' retry and paging code can be
tested against the wire, not against mocks. None of this is production code.
"""

from turnover_demo.sample_servers.lms_server import LmsSampleServer
from turnover_demo.sample_servers.sftp_server import SftpSampleServer

__all__ = ["LmsSampleServer", "SftpSampleServer"]
