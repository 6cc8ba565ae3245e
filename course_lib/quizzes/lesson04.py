"""Lesson 04's questions: what the student learns from teacher-labelled traffic, soft against hard
pseudo-labels (measured over seeds), the target temperature, and the teacher's calibration.

Numbers come from ``results/lesson04.json`` (the last full-mode run); where the right answer depends on
what that run measured, ``correct`` is a function of the results.
"""
from statistics import mean

from course_lib.quiz import Option, Question


def _seed_rows(results: dict) -> list:
    return results["lesson04"]["soft_vs_hard_over_seeds"]["rows"]


def _hard_led(results: dict) -> bool:
    """Hard pseudo-labels had the higher mean test accuracy over the seeds."""
    rows = _seed_rows(results)
    return mean(r["hard_accuracy"] for r in rows) > mean(r["soft_accuracy"] for r in rows)


def _significant(results: dict) -> bool:
    """McNemar found the soft/hard difference significant on at least one seed."""
    return results["lesson04"]["soft_vs_hard_over_seeds"]["significant_seeds"] > 0


def _over_confident(results: dict) -> bool:
    """The temperature fitted on validation is above 1: the teacher's rows had to be flattened."""
    return results["lesson04"]["teacher_calibration_validation"]["fitted_temperature"] > 1


VERDICT = "The last full-mode run's paired test printed: \u201c{lesson04[soft_vs_hard_over_seeds][verdict]}\u201d "

QUESTIONS = [
    Question(
        prompt="On paraphrased test emails the baseline (labelled emails only) scored "
               "{lesson04[baseline][accuracy_paraphrased]:.1%} and the soft-target student "
               "{lesson04[soft_targets][accuracy_paraphrased]:.1%} in the last full-mode run; both are the same "
               "bag-of-words model. What does the soft-target student have that the baseline lacks?",
        options=(
            Option("The teacher's word meanings: distillation copies the pretrained encoder's knowledge of "
                   "synonyms into the student's embeddings.",
                   why="Nothing of the encoder is copied: the student's hashed n-gram embeddings start from scratch "
                       "and only ever see its own training texts and targets. It knows a word only if it saw that "
                       "word in training, which is why what it trains on matters so much."),
            Option("More parameters: it was trained on more data, so it was built larger.",
                   why="All three students are the same NgramStudent with {lesson04[soft_targets][params]:,} "
                       "parameters. What differs is only what they were trained on."),
            Option("A better test set: the traffic it trained on includes the test emails.",
                   why="The traffic is a separate pile of unlabelled emails; the test emails are held out from "
                       "everything. If they had leaked, the result would be worthless, not better."),
            Option("Training data that contains the words customers really use: {lesson04[sizes][traffic]:,} traffic "
                   "emails, paraphrases included, labelled by the teacher.",
                   correct=True,
                   why="A bag-of-words model knows only the words it was shown. The baseline saw a few hundred "
                       "labelled emails; the soft-target student saw the traffic, and the teacher (whose pretrained "
                       "encoder handles wordings it has rarely seen) told it where each of those emails belongs. "
                       "That is how the teacher's generalisation reaches a student that cannot generalise by itself."),
        ),
    ),
    Question(
        prompt="Lesson 04 trained the hard-pseudo-label student and the soft-target student on all "
               "{lesson04[sizes][traffic]:,} traffic emails with several seeds, and compared each pair with McNemar's "
               "test on the same {lesson04[sizes][test]:,} test emails. What did the last full-mode run find?",
        options=(
            Option("Soft targets won clearly: they carry the teacher's ranking of the other queues, so they must beat "
                   "hard labels; the test only confirms it.",
                   why=VERDICT + "No argument settles a measurement in advance: soft targets carry more information "
                       "per email, but whether that makes this student more accurate on this task is what the seeds "
                       "and the paired test are for."),
            Option("Hard pseudo-labels led on average, but no single seed's test found the difference significant.",
                   correct=lambda r: _hard_led(r) and not _significant(r),
                   why=VERDICT + "A lead that shows in seed after seed but that no one test confirms is a small, "
                       "possibly real, difference: McNemar's test only counts the emails exactly one of the two "
                       "students got wrong, and a few dozen of those cannot settle a few tenths of a point."),
            Option("Soft targets led on average (or tied), but no single seed's test found the difference "
                   "significant.",
                   correct=lambda r: not _hard_led(r) and not _significant(r),
                   why=VERDICT + "Read which kind had the higher mean accuracy over the seeds, then how many seeds' "
                       "tests were significant: this option is right only if soft targets were ahead on average and "
                       "no test was significant."),
            Option("The difference was significant on at least one seed.",
                   correct=_significant,
                   why=VERDICT + "The count of significant seeds is in the verdict above; this option is right only if "
                       "it is above zero. With a couple of thousand test emails, a difference of a few tenths of a "
                       "point rarely reaches p < 0.05 on one seed."),
        ),
    ),
    Question(
        prompt="A hard pseudo-label keeps only the teacher's top queue and throws away its ranking of the others. Yet "
               "trained on all {lesson04[sizes][traffic]:,} traffic emails, hard pseudo-labels scored "
               "{lesson04[hard_pseudo_labels][accuracy]:.1%} and soft targets {lesson04[soft_targets][accuracy]:.1%} "
               "(seed 0). How can a large transfer set make up for the information a hard label loses?",
        options=(
            Option("It cannot: the two scores are close only by chance.",
                   why="Whether a gap of this size is chance is what the paired test over seeds answers, so it need "
                       "not be guessed (the last full-mode run's verdict: \u201c{lesson04[soft_vs_hard_over_seeds][verdict]}"
                       "\u201d); and there is a mechanism that predicts close scores on a large transfer set, which "
                       "the right option gives."),
            Option("With many similar emails, the mix of hard labels among them tells the student how ambiguous that "
                   "kind of email is; soft targets carry it per email, which matters most when the transfer set is "
                   "small.",
                   correct=True,
                   why="Many teacher-labelled examples in every region of the input space average out to the "
                       "teacher's probabilities there. Soft targets give that per example, so they should pay most "
                       "when examples are few; section 6's curve over transfer-set sizes tests exactly that (at "
                       "{lesson04[transfer_size_curves][sizes][0]} emails: hard "
                       "{lesson04[transfer_size_curves][hard pseudo-labels][0]:.1%}, soft "
                       "{lesson04[transfer_size_curves][soft targets, target temperature 1][0]:.1%})."),
            Option("Hard pseudo-labels carry the same information per email as soft targets, because the teacher is "
                   "almost always confident.",
                   why="Per email a hard label always loses something whenever the teacher's row is not one-hot, and "
                       "difficult emails (mostly refund, partly billing) are exactly where it is not. The information "
                       "comes back only in aggregate, over many similar emails."),
            Option("The student is trained with cross-entropy, which ignores every probability except the top one.",
                   why="Cross-entropy against a soft row weighs the student's log-probability of every queue by the "
                       "target's probability for it: all of the row is used. It reduces to the top class only when "
                       "the target is one-hot."),
        ),
    ),
    Question(
        prompt="The validation search chose a target temperature of {lesson04[target_temperature]:g} for the "
               "soft-target student. How does lesson 04's target temperature differ from lesson 02's temperature T?",
        options=(
            Option("It does not: both divide the teacher's and the student's logits and scale the loss by T².",
                   why="That describes lesson 02's temperature only. Lesson 04's divides the teacher's logits to make "
                       "the targets, and the student trains at temperature 1 with plain cross-entropy, no T²; the "
                       "lesson names it target_temperature to keep the two apart."),
            Option("It divides the teacher's probabilities, not its logits, and renormalises them.",
                   why="It divides the logits: softmax(teacher_logits / target_temperature). Dividing probabilities by a "
                       "constant and renormalising would give back the same row; exercise 4.1 checks exactly this."),
            Option("It reshapes only the targets: the teacher's logits are divided by it, and the student is trained "
                   "and used at temperature 1 with plain cross-entropy.",
                   correct=True,
                   why="It is a knob on what the student is asked to imitate (here {lesson04[target_temperature]:g}). "
                       "Below 1 it sharpens the teacher's rows towards hard labels, above 1 "
                       "it flattens them; the student's own outputs are never softened."),
            Option("It is applied to the student's outputs in production, to sharpen its routing decisions.",
                   why="Nothing is applied at serving time: the student routes an email to its top queue, and "
                       "dividing its logits by a positive number would not change which queue that is anyway."),
        ),
    ),
    Question(
        prompt="The target temperature chosen on validation for the student was {lesson04[target_temperature]:g}. "
               "On the validation emails the teacher's fitted calibration temperature was "
               "{lesson04[teacher_calibration_validation][fitted_temperature]:.2f} (ECE "
               "{lesson04[teacher_calibration_validation][ece]:.3f}). What do these say about the teacher's "
               "confidence?",
        options=(
            Option("The fitted temperature is above 1: the teacher's rows had to be flattened, so it is slightly "
                   "over-confident (whichever target temperature teaches best says more about the student than about "
                   "the teacher).",
                   correct=_over_confident,
                   why="fit_temperature finds the temperature that makes the teacher's probabilities best match its "
                       "hits on validation: "
                       "{lesson04[teacher_calibration_validation][fitted_temperature]:.2f} here. Above 1 means "
                       "over-confident, below 1 under-confident. The target temperature is chosen for how well the "
                       "student learns, which is a different question."),
            Option("The fitted temperature is at most 1: the teacher's rows had to be sharpened, so it is "
                   "under-confident.",
                   correct=lambda r: not _over_confident(r),
                   why="fit_temperature's answer, {lesson04[teacher_calibration_validation][fitted_temperature]:.2f}, "
                       "decides this option: below 1 means the teacher's rows had to be sharpened (under-confident), "
                       "above 1 flattened (over-confident)."),
            Option("The chosen target temperature says it on its own: below 1 means an under-confident teacher, "
                   "above 1 an over-confident one.",
                   why="It does not: sharper targets can teach best simply because a small student learns faster from "
                       "rows close to hard labels, and flatter ones because they regularise. Whether the teacher is "
                       "under- or over-confident is measured separately, by the reliability diagram and the fitted "
                       "temperature."),
            Option("The ECE says it: any ECE above 0 means the teacher is under-confident.",
                   why="The ECE is the average gap between accuracy and confidence, without a sign: it says how far "
                       "the teacher is from calibrated, not in which direction. The direction comes from the fitted "
                       "temperature or from which side of the diagonal the reliability bars fall."),
        ),
    ),
]
