using ContinualMoE.Data;
using ContinualMoE.Data.Generated;
using ContinualMoE.Scenarios;
using ContinualMoE.Training;
using static TorchSharp.torch;

namespace ContinualMoE.Tests.Training;

/// <summary>The trainer's evaluation: which logits count (class- vs task-incremental), what the learner is told, and
/// how each task row and each class is counted.</summary>
public class EvaluationTests
{
    /// <summary>Scores the true class 1 and a fixed distractor class 2, and records the contexts it is evaluated with.</summary>
    private sealed class DistractedLearner(int classCount, int? distractor) : IContinualLearner
    {
        public List<EvaluationContext> Contexts { get; } = [];
        public string Name => "distracted";
        public void BeginTask(TaskContext task) { }
        public IReadOnlyList<TrainingPhase> TrainingPhases(TaskContext task) => [];
        public void EndTask(TaskContext task) { }
        public Prediction Predict(Tensor images, EvaluationContext context) => throw new InvalidOperationException("needs the batch");

        public Prediction Predict(Batch batch, EvaluationContext context)
        {
            Contexts.Add(context);
            var logits = nn.functional.one_hot(batch.Labels, classCount).to(float32);
            if (distractor is int d) logits.select(1, d).add_(2);
            return new Prediction(logits);
        }

        public IReadOnlyDictionary<string, Tensor> State() => new Dictionary<string, Tensor>();
        public void LoadState(IReadOnlyDictionary<string, Tensor> state) { }
        public MethodCost Cost(int tasksTrained) => new(0, 0, 0, 1);
        public void Dispose() { }
    }

    private static DataSource Source() => new(16, [0.5f, 0.5f, 0.5f], [0.5f, 0.5f, 0.5f], batchSize: 4, seed: 1, CPU, workers: 1);

    private static DatasetSplits Data(int classes) =>
        GeneratedBenchmark.Create(seed: 1, upstreamClasses: 1, continualClasses: classes, trainPerClass: 2, testPerClass: 3, size: 16).Continual;

    [Theory]
    [InlineData(false, 50.0, 0.0)]    // class-incremental: the distractor (a task-0 class) wins every task-1 image
    [InlineData(true, 50.0, 100.0)]   // task-incremental: task 1's logits exclude it, so the true class wins
    public void TaskIncrementalEvaluationRestrictsLogitsToTheTrueTaskAndTellsTheLearner(bool taskIncremental, double task0, double task1)
    {
        var scenario = ClassIncrementalScenario.Create(Data(4), taskCount: 2, seed: 1, taskIncremental: taskIncremental);
        var distractor = scenario.Tasks[0].Classes[0];
        var learner = new DistractedLearner(scenario.ClassCount, distractor);
        var result = new ContinualTrainer(scenario, Source(), seed: 1).Evaluate(learner, afterTask: 1);

        Assert.Equal(new[] { task0, task1 }, result.Accuracy);
        Assert.Equal(new[] { 6, 6 }, result.Counts);   // 2 classes x 3 test images per task
        Assert.All(learner.Contexts, c => Assert.Equal(2, c.TasksTrained));
        Assert.All(learner.Contexts, c => Assert.True(c.SeenClassMask.All(seen => seen)));
        var rows = learner.Contexts.Select(c => c.Samples!.Dataset).Distinct().ToList();
        Assert.Equal(2, rows.Count);
        for (var row = 0; row < 2; row++)
        {
            var contexts = learner.Contexts.Where(c => ReferenceEquals(c.Samples!.Dataset, scenario.Tasks[row].Test)).ToList();
            Assert.NotEmpty(contexts);
            if (taskIncremental)
            {
                Assert.All(contexts, c => Assert.Equal(row, c.TrueTask));
                Assert.All(contexts, c => Assert.Equal(scenario.ClassMask(row), c.TrueTaskClassMask));
            }
            else
            {
                Assert.All(contexts, c => Assert.Null(c.TrueTask));
                Assert.All(contexts, c => Assert.Null(c.TrueTaskClassMask));
            }
        }
    }

    [Fact]
    public void EachTaskRowCountsItsOwnTestImagesAndEachClassItsImagesOnce()
    {
        var scenario = ClassIncrementalScenario.Create(Data(4), taskCount: 2, seed: 1);
        var distractor = scenario.Tasks[0].Classes[0];
        var result = new ContinualTrainer(scenario, Source(), seed: 1).Evaluate(new DistractedLearner(scenario.ClassCount, distractor), afterTask: 1);
        Assert.Equal(new double[] { 3, 0 }, result.Correct);   // only the distractor's own images are right
        Assert.Equal(new[] { 6, 6 }, result.Counts);
        for (var c = 0; c < scenario.ClassCount; c++)
        {
            Assert.Equal(3, result.Classes.Total[c]);
            Assert.Equal(c == distractor ? 3.0 : 0.0, result.Classes.Correct[c]);
        }
        // After the first task only its row exists and only its classes are counted.
        var first = new ContinualTrainer(scenario, Source(), seed: 1).Evaluate(new DistractedLearner(scenario.ClassCount, null), afterTask: 0);
        Assert.Equal(new[] { 100.0 }, first.Accuracy);
        Assert.Equal(6, first.Classes.Total.Sum());
    }

    [Fact]
    public void AClassInSeveralTasksCountsInEveryTaskRowButOnceInTheClassResults()
    {
        var scenario = ContinualScenario.Create(Data(6),
            new ScenarioSettings { Kind = ScenarioKinds.Overlap, Tasks = 2, Overlap = 0.5, Seed = 1 });
        var shared = Enumerable.Range(0, scenario.ClassCount).Where(c => scenario.TasksOfClass(c).Count == 2).ToList();
        Assert.NotEmpty(shared);   // the scenario repeats a class, or the test would prove nothing
        var result = new ContinualTrainer(scenario, Source(), seed: 1).Evaluate(new DistractedLearner(scenario.ClassCount, null), afterTask: 1);
        for (var t = 0; t < 2; t++)
        {
            Assert.Equal(3 * scenario.Tasks[t].TestClasses.Count, result.Counts[t]);
            Assert.Equal(100.0, result.Accuracy[t]);
        }
        var seen = Enumerable.Range(0, scenario.ClassCount).Where(c => scenario.TasksOfClass(c).Count > 0).ToList();
        Assert.All(seen, c => Assert.Equal(3, result.Classes.Total[c]));
        Assert.Equal(3 * seen.Count, result.Classes.Total.Sum());
        Assert.True(result.Counts.Sum() > result.Classes.Total.Sum());
    }
}
