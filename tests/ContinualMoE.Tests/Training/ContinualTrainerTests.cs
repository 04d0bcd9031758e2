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
}
