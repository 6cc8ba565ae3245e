"""Lesson 03's questions: the shape problem, what a hidden-state loss costs at serving time, judging gains
against the spread over seeds, and the widened beta grid.

Numbers come from ``results/lesson03.json`` (the last full-mode run).
"""
from course_lib.quiz import Option, Question

QUESTIONS = [
    Question(
        prompt="The thin student's block2 has {lesson03[regime][student][channels][1]} channels, the teacher's "
               "{lesson03[teacher][recipe][channels][1]}. FitNets' hint loss compares the two with a trainable 1×1 "
               "convolution, the regressor. On which side does it belong, and why?",
        options=(
            Option("On the teacher's side, to squeeze its {lesson03[teacher][recipe][channels][1]} channels down to "
                   "the student's {lesson03[regime][student][channels][1]}: a smaller target is easier to match.",
                   why="A trainable map on the teacher's side can make the target as easy as it likes, down to "
                       "mapping everything to zero, and the hint loss then falls without the student learning "
                       "anything. The teacher's features are the fixed thing to imitate; the exercise's checks catch "
                       "exactly this regressor on the wrong side."),
            Option("On the student's side: it maps the student's features to the teacher's shape, so the student has "
                   "to carry information from which the teacher's features can be predicted.",
                   correct=True,
                   why="The teacher is a constant target; the regressor (student side) and the student's lower "
                       "layers learn together to predict it in stage 1. The regressor is then thrown away, and what "
                       "remains is a student whose layer holds what the teacher's layer held."),
            Option("None is needed: the MSE broadcasts the smaller tensor over the larger one.",
                   why="Tensors of {lesson03[regime][student][channels][1]} and "
                       "{lesson03[teacher][recipe][channels][1]} channels do not broadcast against each other, and "
                       "even where shapes happen to broadcast, comparing channel k of one network with channel k of "
                       "another is meaningless: their channels are not in any shared order."),
            Option("In both networks at serving time, so that the student can call on the teacher's layer when it "
                   "is unsure.",
                   why="Nothing of the teacher runs at serving time, and the regressor is thrown away after stage 1. "
                       "Hidden-state distillation changes how the student learns, not what runs in production."),
        ),
    ),
    Question(
        prompt="In the last full-mode run the hint+KD student reached {lesson03[methods][hint+KD][test_accuracy_mean]:.2%} "
               "on the test digits and the AT+KD student {lesson03[methods][AT+KD][test_accuracy_mean]:.2%} (means "
               "over seeds). Which of the six students costs the most to serve?",
        options=(
            Option("The hint+KD student, because it keeps the regressor that maps its features to the teacher's.",
                   why="The regressor exists only to compute the hint loss during stage 1 of training and is thrown "
                       "away before stage 2. The deployed hint+KD student is the same ThinCNN as the others."),
            Option("The AT+KD student, because it must compute attention maps for every image it classifies.",
                   why="Attention maps are computed inside the training loss only, to compare the student's maps with "
                       "the teacher's. At serving time the student just runs its forward pass, like every other "
                       "student here."),
            Option("The students with a teacher, because the teacher has to run alongside them in production.",
                   why="The teacher is needed only to compute targets during training. In production the student "
                       "runs alone; that is the point of distilling it."),
            Option("None: all six are the same ThinCNN with {lesson03[methods][baseline][params]:,} parameters and "
                   "the same latency ({lesson03[latency][student][median]:.1f} ms per batch of "
                   "{lesson03[latency_batch_size]} in the last run).",
                   correct=True,
                   why="The losses differ, the network does not: every student has "
                       "{lesson03[methods][baseline][params]:,} parameters and the same forward pass (the teacher, "
                       "with {lesson03[teacher][params]:,}, took {lesson03[latency][teacher][median]:.1f} ms for the "
                       "same batch). The teacher's layers shape training only."),
        ),
    ),
    Question(
        prompt="Over seeds {lesson03[seeds]}, the soft-target student's test accuracy was "
               "{lesson03[methods][soft targets][test_accuracy]} and the hint+KD student's "
               "{lesson03[methods][hint+KD][test_accuracy]}. How should you decide whether the hint added anything?",
        options=(
            Option("Compare the means: whichever is higher is the better method.",
                   why="A difference in means tells you nothing until you know how much it moves from seed to seed. "
                       "Here the means are {lesson03[methods][soft targets][test_accuracy_mean]:.2%} and "
                       "{lesson03[methods][hint+KD][test_accuracy_mean]:.2%}, and the runs of each spread by "
                       "{lesson03[methods][soft targets][test_accuracy_std]:.2%} and "
                       "{lesson03[methods][hint+KD][test_accuracy_std]:.2%} (standard deviation across seeds): set the "
                       "difference against that spread before concluding anything."),
            Option("Take the difference seed by seed (same seed: same initial weights and data order) and count a gain "
                   "only when its mean is clearly larger than its spread across seeds.",
                   correct=True,
                   why="Pairing by seed removes what the two runs share (initialisation, order of batches), so the "
                       "paired differences isolate the loss. A gain that is not clearly larger than the spread of those "
                       "differences could be luck; the lesson prints exactly this comparison."),
            Option("Compare the best seed of each method: that shows what each can do.",
                   why="The best of five seeds is the luckiest run, not what a method does. Comparing maxima rewards "
                       "whichever method happens to be noisier."),
            Option("Try several betas for the hint on the test set and keep the best.",
                   why="Choosing on test makes the reported score optimistic: it fits the choice to the test set's "
                       "noise. Every weight in this lesson is chosen on the validation split."),
        ),
    ),
    Question(
        prompt="The search for RKD+KD's weight beta ended with the grid {lesson03[beta_grid][RKD+KD]} and chose "
               "beta = {lesson03[methods][RKD+KD][beta]:g} on validation. Why does the lesson widen a grid past its "
               "starting values?",
        options=(
            Option("Because a larger beta is always better for a hidden-state loss, so the grid keeps growing.",
                   why="The grid stops growing as soon as its best value is strictly inside it: a beta that is too "
                       "large makes the student chase the hidden-state term at the expense of the task. So the widened "
                       "grid ends beyond the chosen beta, at values where validation accuracy was lower again."),
            Option("Because the test accuracy kept rising as beta grew.",
                   why="The test split is never looked at while choosing: the widening follows validation accuracy. "
                       "Test is scored once, with the chosen beta."),
            Option("Because when the best value sits at the edge of a grid, the best setting may lie beyond it; the "
                   "grid is widened until its best value on validation is strictly inside.",
                   correct=True,
                   why="A best value at the edge says only that the search stopped too early. Each hidden-state loss "
                       "has its own scale (a smooth-L1 on normalised distances is small), so no starting grid fits "
                       "all of them; widening by a factor of 4 past the edge finds the peak, here at "
                       "{lesson03[methods][RKD+KD][beta]:g}."),
            Option("Because the relational loss is large and needs a tiny beta to stay in balance with the KD term.",
                   why="The other way round: RKD's smooth-L1 on distances divided by their mean is a small number, so "
                       "its weight has to be large, not tiny, for the term to matter at all."),
        ),
    ),
]
