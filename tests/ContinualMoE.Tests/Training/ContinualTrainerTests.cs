using ContinualMoE.Data;
using ContinualMoE.Data.Generated;
using ContinualMoE.Scenarios;
using ContinualMoE.Training;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ContinualMoE.Tests.Training;

public class ContinualTrainerTests
{
    /// <summary>A learner whose loss turns NaN on the second batch.</summary>
    private sealed class DivergingLearner : IContinualLearner
    {
        private readonly Parameter weight = new(ones(1));
        private int steps;
        public string Name => "diverging";
        public void BeginTask(TaskContext task) { }
        public IReadOnlyList<TrainingPhase> TrainingPhases(TaskContext task) =>
        [
            new TrainingPhase
            {
                Name = "explode", Epochs = 1, Parameters = [new ParameterGroup("w", [weight])], Optimizer = new OptimizerSettings(),
                Step = _ => new StepOutput(null, ++steps >= 2 ? weight.sum() * float.NaN : weight.sum()),
            },
        ];
        public void EndTask(TaskContext task) { }
        public Prediction Predict(Tensor images, EvaluationContext context) => new(zeros(images.shape[0], 4));
        public IReadOnlyDictionary<string, Tensor> State() => new Dictionary<string, Tensor>();
        public void LoadState(IReadOnlyDictionary<string, Tensor> state) { }
        public MethodCost Cost(int tasksTrained) => new(1, 0, 4, 1);
        public void Dispose() { }
    }

    [Fact]
    public void NaNLossStopsWithAnErrorNamingTheStep()
    {
        var data = GeneratedBenchmark.Create(seed: 1, upstreamClasses: 1, continualClasses: 4, trainPerClass: 8, testPerClass: 2, size: 16).Continual;
        var scenario = ClassIncrementalScenario.Create(data, taskCount: 2, seed: 1);
        var source = new DataSource(16, [0.5f, 0.5f, 0.5f], [0.5f, 0.5f, 0.5f], batchSize: 4, seed: 1, CPU);
        var error = Assert.Throws<ContinualMoEException>(() => new ContinualTrainer(scenario, source, seed: 1).Run(new DivergingLearner()));
        Assert.Contains("loss is NaN at task 1, phase 'explode', epoch 1, batch 2", error.Message);
    }

    /// <summary>A learner that records the dataset indices of every training batch.</summary>
    private sealed class RecordingLearner : IContinualLearner
    {
        private readonly Parameter weight = new(ones(1));
        public List<(int Task, int[] Indices)> Batches { get; } = [];
        private int task;
        public string Name => "recording";
        public void BeginTask(TaskContext context) => task = context.TaskIndex;
        public IReadOnlyList<TrainingPhase> TrainingPhases(TaskContext context) =>
        [
            new TrainingPhase
            {
                Name = "record", Epochs = 2, Parameters = [new ParameterGroup("w", [weight])], Optimizer = new OptimizerSettings(), Augment = false,
                Step = batch => { Batches.Add((task, batch.Indices)); return new StepOutput(null, weight.sum()); },
            },
        ];
        public void EndTask(TaskContext context) { }
        public Prediction Predict(Tensor images, EvaluationContext context) => new(zeros(images.shape[0], 4));
        public IReadOnlyDictionary<string, Tensor> State() => new Dictionary<string, Tensor>();
        public void LoadState(IReadOnlyDictionary<string, Tensor> state) { }
        public MethodCost Cost(int tasksTrained) => new(1, 0, 4, 1);
        public void Dispose() { }
    }

    [Fact]
    public void DropLastTrainsOnTheShuffledOrderTruncatedToFullBatches()
    {
        // 2 classes x 9 images per task, batch 4: torch's DataLoader(shuffle=True, drop_last=True) draws the permutation
        // and then cuts it into 4 full batches, dropping the last 2 images of the permutation.
        var data = GeneratedBenchmark.Create(seed: 1, upstreamClasses: 1, continualClasses: 4, trainPerClass: 9, testPerClass: 2, size: 16).Continual;
        var scenario = ClassIncrementalScenario.Create(data, taskCount: 2, seed: 1);
        var source = new DataSource(16, [0.5f, 0.5f, 0.5f], [0.5f, 0.5f, 0.5f], batchSize: 4, seed: 1, CPU, workers: 1, dropLastInTraining: true);
        var learner = new RecordingLearner();
        new ContinualTrainer(scenario, source, seed: 1).Run(learner);
        Assert.Equal(2 * 2 * 4, learner.Batches.Count);
        Assert.All(learner.Batches, b => Assert.Equal(4, b.Indices.Length));
        for (var t = 0; t < 2; t++)
        {
            var reference = (ContinualMoE.Data.DataLoader)source.Loader(scenario.Tasks[t].Train, augment: false, shuffle: true);
            for (var epoch = 0; epoch < 2; epoch++)
            {
                var seen = learner.Batches.Where(b => b.Task == t).Skip(epoch * 4).Take(4).SelectMany(b => b.Indices).ToArray();
                var order = reference.Order(t * 10_000 + epoch);
                Assert.Equal(order.Take(16), seen);
                Assert.Equal(18, order.Length);
            }
        }

        // Without drop_last every image is trained on, the last batch holding the 2 left over.
        var keepAll = new RecordingLearner();
        new ContinualTrainer(scenario, new DataSource(16, [0.5f, 0.5f, 0.5f], [0.5f, 0.5f, 0.5f], batchSize: 4, seed: 1, CPU, workers: 1), seed: 1).Run(keepAll);
        Assert.Equal(2 * 2 * 5, keepAll.Batches.Count);
        Assert.Equal(2, keepAll.Batches[4].Indices.Length);
    }

    [Fact]
    public void DropLastWithTooFewImagesForOneBatchIsAnError()
    {
        var data = GeneratedBenchmark.Create(seed: 1, upstreamClasses: 1, continualClasses: 4, trainPerClass: 3, testPerClass: 2, size: 16).Continual;
        var scenario = ClassIncrementalScenario.Create(data, taskCount: 2, seed: 1);
        var source = new DataSource(16, [0.5f, 0.5f, 0.5f], [0.5f, 0.5f, 0.5f], batchSize: 8, seed: 1, CPU, workers: 1, dropLastInTraining: true);
        var error = Assert.Throws<ContinualMoEException>(() => new ContinualTrainer(scenario, source, seed: 1).Run(new RecordingLearner()));
        Assert.Contains("drop_last", error.Message);
        Assert.Contains("6 training images", error.Message);
    }
}
