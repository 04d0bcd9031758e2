using ContinualMoE.Data.Generated;
using ContinualMoE.Data.Transforms;
using ContinualMoE.Scenarios;
using ContinualMoE.Training;
using static TorchSharp.torch;

namespace ContinualMoE.Tests.Scenarios;

/// <summary>The trainer on overlapping scenarios: task-identity correctness with a class in several tasks, per-class
/// results, and earlier tasks' data only for learners that declare rehearsal.</summary>
public class ScenarioTrainingTests
{
    /// <summary>Trains nothing; always predicts task 0 and the smallest seen label; records what it was given.</summary>
    private class ProbeLearner : IContinualLearner
    {
        public List<int> SeenTrainSetCounts { get; } = [];
        public string Name => "probe";
        public void BeginTask(TaskContext task) => SeenTrainSetCounts.Add(task.SeenTrainSets.Count);
        public IReadOnlyList<TrainingPhase> TrainingPhases(TaskContext task) => [];
        public void EndTask(TaskContext task) { }
        public Prediction Predict(Tensor images, EvaluationContext context)
        {
            var classes = context.SeenClassMask.Length;
            var logits = arange(classes, dtype: float32).neg().unsqueeze(0).expand(images.shape[0], classes).clone();
            return new Prediction(logits, zeros(images.shape[0], dtype: int64));
        }
        public IReadOnlyDictionary<string, Tensor> State() => new Dictionary<string, Tensor>();
        public void LoadState(IReadOnlyDictionary<string, Tensor> state) { }
        public MethodCost Cost(int tasksTrained) => new(0, 0, 0, 1);
        public void Dispose() { }
    }

    private sealed class RehearsalProbe : ProbeLearner, IRehearsalLearner;

    private static (ContinualScenario Scenario, DataSource Data) Overlapping()
    {
        var data = GeneratedBenchmark.Create(seed: 1, upstreamClasses: 1, continualClasses: 6, trainPerClass: 6, testPerClass: 3, size: 16).Continual;
        var scenario = ContinualScenario.Create(data, new ScenarioSettings { Kind = ScenarioKinds.Overlap, Tasks = 3, Overlap = 0.5, Seed = 2 });
        var source = new DataSource(16, [.. ImagePipeline.VitMean], [.. ImagePipeline.VitStd], batchSize: 8, seed: 2, CPU, workers: 1);
        return (scenario, source);
    }

    [Fact]
    public void PredictedTaskIsCorrectWhenItIsAnyTaskThatHoldsTheClass()
    {
        var (scenario, data) = Overlapping();
        Assert.Equal(new[] { 4, 3, 3 }, scenario.Tasks.Select(t => t.Classes.Count));
        using var learner = new ProbeLearner();
        var results = new ContinualTrainer(scenario, data, seed: 1).Run(learner);
        for (var i = 0; i < 3; i++)
        {
            // The probe always predicts task 0: right exactly for the test images of classes that task 0 holds.
            var expected = 100.0 * scenario.Tasks[i].TestClasses.Count(c => scenario.TasksOfClass(c).Contains(0)) / scenario.Tasks[i].TestClasses.Count;
            Assert.Equal(expected, results.TaskIdentity[i, 2], 9);
        }
        Assert.True(results.TaskIdentity[1, 2] > 0);   // task 1 repeats classes of task 0
    }

    [Fact]
    public void PerClassResultsCountEachClassTestImagesOnce()
    {
        var (scenario, data) = Overlapping();
        using var learner = new ProbeLearner();
        var results = new ContinualTrainer(scenario, data, seed: 1).Run(learner);
        var classes = results.LatestClasses!;
        Assert.Equal(2, classes.AfterTask);
        Assert.All(Enumerable.Range(0, 6), c => Assert.Equal(3, classes.Total[c]));
        Assert.Equal(3, classes.Correct[0]);                 // the probe always predicts label 0
        Assert.Equal(0, classes.Correct.Skip(1).Sum());
    }

    [Fact]
    public void OnlyRehearsalLearnersGetEarlierTasksData()
    {
        var (scenario, data) = Overlapping();
        using var plain = new ProbeLearner();
        using var rehearsal = new RehearsalProbe();
        new ContinualTrainer(scenario, data, seed: 1).Run(plain);
        new ContinualTrainer(scenario, data, seed: 1).Run(rehearsal);
        Assert.Equal(new[] { 0, 0, 0 }, plain.SeenTrainSetCounts);
        Assert.Equal(new[] { 1, 2, 3 }, rehearsal.SeenTrainSetCounts);
    }

    [Theory]
    [InlineData(CovarianceKind.Full)]
    [InlineData(CovarianceKind.Diagonal)]
    public void MergingTwoHalvesEqualsFittingOnAll(CovarianceKind kind)
    {
        var generator = new TorchSharp.torch.Generator(3);
        var features = randn(50, 4, generator: generator) * 2 + 1;
        using var statistics = new GaussianClassStatistics(3, 4, kind);
        statistics.Set(0, features);
        statistics.Set(1, features.narrow(0, 0, 20));
        statistics.Merge(1, features.narrow(0, 20, 30));
        statistics.Merge(2, features);          // a class without statistics is simply set
        var state = statistics.state_dict();
        Assert.True(state["means"][1].allclose(state["means"][0], rtol: 1e-5, atol: 1e-5));
        Assert.True(state["covariances"][1].allclose(state["covariances"][0], rtol: 1e-4, atol: 1e-5));
        Assert.True(state["covariances"][2].equal(state["covariances"][0]).all().item<bool>());
        Assert.Equal(50, statistics.Count(1));
        Assert.Equal(50, statistics.Count(0));
        Assert.True(state["covariances"][1].abs().sum().item<float>() > 1);
    }
}
