"""Why an enrollment made on the retired camera page (three pictures and a head turn) failed,
as its row keeps it: message ids and their message parameters (`Enrollment.error_params`). No
code raises these any more; they stay in the catalogue so that those rows keep showing their
reason in the reader's language (`errors.stored_message`), like every other enrollment's."""

from __future__ import annotations

from consent_service.errors import N_

STORED = (
    N_("Expected %(steps)d camera pictures, one per step, but %(frames)d arrived."),
    N_("The picture taken %(what)s: %(reason)s"),
    N_(
        "No face was found in the picture taken %(what)s. Keep your whole face in the picture, "
        "in good light, and try again."
    ),
    N_("The picture taken %(what)s shows %(faces)d faces; only you may be in it."),
    N_("The camera pictures do not all show the same person."),
    N_(
        "Your head did not turn to the %(step)s as asked, so this could not be checked as a live "
        "enrollment. Try again: turn your whole head (not only your eyes) when asked, and keep "
        "your face in the picture."
    ),
    N_("The camera pictures are no longer available; please enroll again."),
    # Parameters: the media (in "%(media)s could not be processed after %(num)d attempts."),
    # the step a picture was taken at, the turn not made.
    N_("The camera pictures"),
    N_("looking straight at the camera"),
    N_("turning your head to your left"),
    N_("turning your head to your right"),
    N_("left"),
    N_("right"),
)
