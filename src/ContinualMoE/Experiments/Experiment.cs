using TorchSharp;
using ContinualMoE.Data.Transforms;
using ContinualMoE.Backbones;
using ContinualMoE.Data;
using ContinualMoE.Methods;
using ContinualMoE.Scenarios;
using ContinualMoE.Training;

namespace ContinualMoE.Experiments;

/// <summary>
/// A continual-learning run assembled from a <see cref="RunConfig"/>: data, scenario, frozen backbone, learner and
/// trainer. The CLI drives it and writes its results; tests drive it directly.
/// </summary>
public sealed class Experiment : IDisposable
{
    public RunConfig Config { get; }
    public ClassIncrementalScenario Scenario { get; }
    public VisionTransformer Backbone { get; }
    public IContinualLearner Learner { get; }
    public DataSource Data { get; }
    public TorchSharp.torch.Device Device { get; }
    public string BackboneDescription { get; }

    private Experiment(RunConfig config, ClassIncrementalScenario scenario, VisionTransformer backbone, IContinualLearner learner,
        DataSource data, TorchSharp.torch.Device device, string backboneDescription)
    {
        Config = config; Scenario = scenario; Backbone = backbone; Learner = learner; Data = data; Device = device;
        BackboneDescription = backboneDescription;
    }

    /// <summary>Builds the run. <paramref name="backboneWeights"/> is the resolved weights file (null: random init).</summary>
    public static Experiment Build(RunConfig config, string? backboneWeights, DatasetSplits? data = null)
    {
        var device = ComputeDevice.Parse(config.Device);
        data ??= LoadData(config);
        data = LimitPerClass(data, config);
        var classCount = data.Train.ClassNames.Count;
        var generator = ClassOrder.ParseGenerator(config.ClassOrder);
        var order = config.ClassOrderFile is not null ? ClassOrder.ReadFile(config.ClassOrderFile, classCount)
            : generator == ClassOrderGenerator.Project ? null : ClassOrder.Generate(generator, classCount, config.Seed);
        var scenario = ClassIncrementalScenario.Create(data, config.Tasks, config.Seed, config.FirstTaskClasses, order,
            config.TaskIncremental);
        var (backbone, report) = BackboneFactory.Create(config.Backbone, backboneWeights, config.Seed);
        backbone.to(device);
        backbone.eval();
        config.Input.Validate();
        var dataSource = new DataSource(backbone.Config.ImageSize, config.Input.Mean, config.Input.Std,
            config.BatchSize, config.Seed, device, config.Workers, config.CropScaleMin, config.Input);
        var settings = new MethodSettings(config.MethodSettings);
        var learner = MethodRegistry.Create(config.Method, new MethodContext(backbone, scenario.ClassCount, config.Tasks, device,
            config.Seed, new TrainingSettings(config.Epochs, config.LearningRate, config.BatchSize), settings));
        var description = backboneWeights is null ? $"{config.Backbone} (random init)" : $"{config.Backbone} from {backboneWeights}";
        if (report is not null && report.SkippedHead) description += " (classifier head of another size skipped)";
        return new Experiment(config, scenario, backbone, learner, dataSource, device, description);
    }

    public ContinualTrainer Trainer(ITrainingObserver? observer = null) => new(Scenario, Data, Config.Seed, observer);

    public static DatasetSplits LoadData(RunConfig config) => DatasetCatalog.Load(config.Dataset, new DatasetOptions
    {
        Root = config.DataRoot,
        Download = config.Download,
        SplitFiles = config.SplitFiles,
        // The generated data is one fixed dataset (like a real one); the run seed only orders its classes.
        Generated = new GeneratedOptions
        {
            Seed = DefaultBackbone.DataSeed,
            ContinualClasses = config.GeneratedClasses,
            TrainPerClass = config.GeneratedTrainPerClass,
            TestPerClass = config.GeneratedTestPerClass,
        },
    });

    /// <summary>Keeps the first N images of each class (in dataset order) for data-scarce or quick runs.</summary>
    private static DatasetSplits LimitPerClass(DatasetSplits data, RunConfig config)
    {
        static IImageDataset Limit(IImageDataset set, int? perClass)
        {
            if (perClass is not int n) return set;
            var taken = new Dictionary<int, int>();
            var indices = new List<int>();
            for (var i = 0; i < set.Count; i++)
            {
                var label = set.GetLabel(i);
                taken.TryGetValue(label, out var count);
                if (count >= n) continue;
                taken[label] = count + 1;
                indices.Add(i);
            }
            return new Subset(set, indices.ToArray());
        }
        return new DatasetSplits(Limit(data.Train, config.TrainPerClassLimit), Limit(data.Test, config.TestPerClassLimit));
    }

    public void Dispose()
    {
        Learner.Dispose();
        Backbone.Dispose();
    }
}
