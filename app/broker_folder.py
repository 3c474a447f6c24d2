"""The embedded broker: kombu's folder transport, with messages that appear whole.

kombu's filesystem transport creates a message file and then writes it; a worker polling
the folder in between moves away an empty file, fails to decode it (its consumer, and with
it the worker, stops) and the message is gone. Here a message is written under a name no
reader matches and renamed into place: a rename is atomic, so a reader sees all of it or
nothing.
"""
import os
import uuid

from kombu.transport import TRANSPORT_ALIASES, filesystem
from kombu.utils.json import dumps
from kombu.exceptions import ChannelError
from kombu.utils.encoding import str_to_bytes
from time import monotonic

ALIAS = "trainyard-folder"


class Channel(filesystem.Channel):
    def _put(self, queue, payload, **kwargs):
        name = f"{int(round(monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        partial = final + ".part"  # readers match names ending in "<queue>.msg" exactly
        try:
            with open(partial, "wb") as f:
                f.write(str_to_bytes(dumps(payload)))
            os.replace(partial, final)
        except OSError as exc:
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc


class Transport(filesystem.Transport):
    Channel = Channel


def register() -> None:
    TRANSPORT_ALIASES.setdefault(ALIAS, f"{__name__}:Transport")
