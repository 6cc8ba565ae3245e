"""Lesson 02's questions: T², the control run, choosing on validation, alpha, and few labels.

Numbers come from ``results/lesson02.json`` (the last full-mode run).
"""
from course_lib.quiz import Option, Question

QUESTIONS = [
    Question(
        prompt="Lesson 02's loss multiplies the soft term by T². A student trained at T = {lesson02[temperature]:g} "
               "with alpha = {lesson02[alpha]:g} but without the T² learns more slowly from the teacher. Why?",
        options=(
            Option("A constant factor cannot matter: it does not move the minimum of the loss, so T² is cosmetic.",
                   why="A factor on the whole loss would matter little, but T² multiplies only the soft term. The "
                       "soft term's gradient shrinks roughly like 1/T² (the table at the top of the lesson measures "
                       "it), so without T² at T = {lesson02[temperature]:g} it is about T² times weaker than "
                       "intended next to the hard-label term: the balance that alpha was meant to set is gone."),
            Option("Without T² the loss grows with T until it overflows.",
                   why="The opposite happens: the soft term's gradient with respect to the student's logits is "
                       "(p_s - p_t) / T, and p_s - p_t itself shrinks like 1/T as both distributions flatten. "
                       "Without T² the soft term becomes tiny, not huge."),
            Option("Without T² the soft term's gradient shrinks like 1/T², so the hard-label term, weighted only "
                   "1 - alpha, dominates and the teacher's signal arrives with a much smaller learning rate.",
                   correct=True,
                   why="The soft term's gradient is (p_s - p_t) / T and p_s - p_t is about 1/T too, hence 1/T² "
                       "overall. Multiplying by T² keeps its size about the same at every temperature, so changing T "
                       "does not secretly change the learning rate or the weight that alpha gives to the teacher."),
            Option("T² replaces the averaging over the batch, which KL divergence does not do by itself.",
                   why="That confuses two separate details. Averaging over the batch is the job of "
                       "reduction='batchmean' (sum over classes, mean over examples); T² corrects the scale of the "
                       "gradient for the temperature. Code can get either one wrong independently."),
        ),
    ),
    Question(
        prompt="In the last full-mode run the 800-800 baseline (hard labels, plain transfer set) made "
               "{lesson02[baseline_errors]} test errors (one per seed), the control (hard labels on the same jittered "
               "copies the soft-target student used, seed 0) {lesson02[control_errors][0]}, and the soft-target "
               "student {lesson02[soft_target_errors]}. How much of the gain do the soft targets themselves deserve?",
        options=(
            Option("All of it: the soft-target student against the baseline is the effect of the teacher.",
                   why="The soft-target student differs from the baseline in two ways: its targets and its training "
                       "data (jittered copies, more passes). The gap between them mixes both effects, which is "
                       "exactly why the lesson runs a control."),
            Option("The part between the control and the soft-target student: the control has everything except "
                   "the soft targets.",
                   correct=True,
                   why="A control that gets everything but the ingredient under test isolates it: baseline to control "
                       "is what the jittered copies bought, control to soft-target student (seed 0: "
                       "{lesson02[control_errors][0]} against {lesson02[soft_target_errors][0]} test errors) is what "
                       "the teacher's probabilities added on top."),
            Option("None of it: the control shows the jittered copies did all the work.",
                   why="The control and the soft-target student saw the same jittered copies for as many passes; "
                       "what separates them is only the targets. So the difference between them, seed 0: "
                       "{lesson02[control_errors][0]} against {lesson02[soft_target_errors][0]} test errors, is the "
                       "soft targets' share, and it is read from the numbers, not assumed to be zero."),
            Option("None can be attributed: the control had fewer passes, so the runs cannot be compared.",
                   why="The control was given the same jittered copies for as many passes as the soft-target student "
                       "(it costs as much as a soft-target run, which is why it runs for one seed only). It is "
                       "comparable by construction; its limitation is that one seed carries some noise."),
        ),
    ),
    Question(
        prompt="The validation sweep chose T = {lesson02[chosen_temperature][800-800]:g} for the 800-800 student and "
               "T = {lesson02[chosen_temperature][30-30]:g} for the 30-30 one. Why choose T on the validation split, "
               "and look at the test split only once the choice is made?",
        options=(
            Option("Because the validation split is larger, so its error counts are more precise.",
                   why="It is not larger: MNIST's test set has 10,000 digits and the course's validation split is "
                       "carved out of the training images. The reason is not precision but independence: the split "
                       "that chooses must not be the one that reports."),
            Option("It makes no difference for a single number like T: one knob cannot overfit a test set.",
                   why="Picking the best of several settings on a split selects the one that fits that split's noise "
                       "too. The sweep's differences are a few errors out of thousands, within what another seed "
                       "would change, so the winner on test would look better on test than it really is. The paper "
                       "chose its bias for the missing 3s on test, and the lesson avoids exactly that."),
            Option("Because the test digits are harder, so they would push T too high.",
                   why="Test and validation digits come from the same distribution; neither is harder. The point is "
                       "which split is used to choose: scores on the choosing split are optimistic."),
            Option("Because choosing on test fits the choice to the test set's own noise, and the reported test "
                   "score would then be optimistic.",
                   correct=True,
                   why="Every choice made by looking at a split tunes the model a little to that split. Choosing on "
                       "validation and scoring test once per chosen setting keeps the test score an honest estimate "
                       "of how the student does on new digits."),
        ),
    ),
    Question(
        prompt="The alpha sweep (validation errors, 800-800 student, seed 0, last full-mode run): alpha = 0: "
               "{lesson02[validation_alpha_sweep][0.0]}, 0.5: {lesson02[validation_alpha_sweep][0.5]}, 0.9: "
               "{lesson02[validation_alpha_sweep][0.9]}, 1.0: {lesson02[validation_alpha_sweep][1.0]}. What does "
               "alpha = 1.0 mean?",
        options=(
            Option("The student is trained on the teacher's soft targets only and never sees a true label.",
                   correct=True,
                   why="In this course alpha weights the soft term and 1 - alpha the hard-label term, so alpha = 1 "
                       "drops the labels entirely. Its {lesson02[validation_alpha_sweep][1.0]} validation errors, "
                       "against {lesson02[validation_alpha_sweep][0.0]} for labels alone (alpha = 0), measure what the "
                       "teacher's probabilities teach on their own."),
            Option("The student is trained on the true labels only: alpha is the weight of the hard-label term.",
                   why="That is the reversed convention, and some code bases do use it, which is why you must check. "
                       "In this course alpha weights the soft term: alpha = 0 is the labels-only student, the "
                       "baseline of the sweep with {lesson02[validation_alpha_sweep][0.0]} validation errors."),
            Option("Both terms count equally, because the weights add up to 1.",
                   why="Equal weight is alpha = 0.5. And even then the two terms would not count equally in practice: "
                       "their sizes differ, which is why alpha is chosen on validation rather than set by principle."),
            Option("The temperature is switched off (T = 1) and the loss becomes plain cross-entropy.",
                   why="Alpha and T are separate knobs: T shapes the soft targets, alpha says how much the soft term "
                       "weighs against the hard-label term. With alpha = 1 the temperature still applies to the soft "
                       "term."),
        ),
    ),
    Question(
        prompt="With only {lesson02[few_labels][n]} training images (1% of the transfer set), the student trained on "
               "their labels made {lesson02[few_labels][baseline_errors]} test errors (one per seed) and the one "
               "trained on the teacher's soft targets for the same images {lesson02[few_labels][soft_target_errors]}. "
               "Why can soft targets help so much when labels are scarce?",
        options=(
            Option("Because soft targets are label smoothing: any softening of the labels regularises.",
                   why="Label smoothing spreads the same small amount over every wrong class, so it says nothing about "
                       "which digits an image resembles. The teacher's probabilities differ from image to image: a 7 "
                       "that looks like a 1 gets a different row from one that looks like a 9. That information is "
                       "what label smoothing lacks."),
            Option("Because the teacher's soft targets were computed on the test images.",
                   why="The teacher scored the same {lesson02[few_labels][n]} training images the student trained on; "
                       "the test images were only used to count errors at the end. Nothing leaked."),
            Option("Because each soft target is a whole distribution, saying which digits the image resembles, so "
                   "each image carries far more information than its label.",
                   correct=True,
                   why="A label gives a few bits per image; a row of ten probabilities says how plausible every other "
                       "digit is. That extra information acts as a strong regulariser, and it counts most where "
                       "images are scarce, because then information per image is what limits the student."),
            Option("Because the soft-target student trained for more steps than the one on labels.",
                   why="Both runs take the same number of gradient steps on the same images; only the targets differ. "
                       "The lesson sets them up that way so that the difference can be pinned on the targets."),
        ),
    ),
]
