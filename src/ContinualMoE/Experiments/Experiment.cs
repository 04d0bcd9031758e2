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
    public IContinualScenario Scenario { get; }
    /// <summary>The ViT of an image run (null in a text run, which has <see cref="LanguageModel"/>).</summary>
    public VisionTransformer Backbone { get; }
    /// <summary>The language model of a text run (null in an image run).</summary>
    public Backbones.Language.DecoderLanguageModel? LanguageModel { get; private init; }
    /// <summary>The frozen backbone whatever the modality (hashed into checkpoints).</summary>
    public TorchSharp.torch.nn.Module FrozenBackbone => (TorchSharp.torch.nn.Module?)LanguageModel ?? Backbone;
    public InputModality Modality => LanguageModel is null ? InputModality.Image : InputModality.Text;
    public IContinualLearner Learner { get; }
    public DataSource Data { get; }
    public TorchSharp.torch.Device Device { get; }
    public string BackboneDescription { get; }
    /// <summary>What the learner was built from (a fresh learner of the same method can be made from it).</summary>
    public MethodContext MethodContext { get; }

    private Experiment(RunConfig config, IContinualScenario scenario, VisionTransformer backbone, IContinualLearner learner,
        DataSource data, TorchSharp.torch.Device device, string backboneDescription, MethodContext methodContext)
    {
        Config = config; Scenario = scenario; Backbone = backbone; Learner = learner; Data = data; Device = device;
        BackboneDescription = backboneDescription; MethodContext = methodContext;
    }

    /// <summary>Builds the run. <paramref name="backboneWeights"/> is the resolved weights file (null: random init).
    /// <c>precision: auto</c> is resolved here (<see cref="PrecisionPolicy"/>); <see cref="Config"/> holds the result.</summary>
    public static Experiment Build(RunConfig config, string? backboneWeights, DatasetSplits? data = null)
    {
        if (TextStreams.IsText(config.Dataset)) return BuildText(config, TextStreams.Load(config));
        config = PrecisionPolicy.Resolve(config);   // Config (and so config.json and checkpoints) records what auto became
        var device = ComputeDevice.Parse(config.Device);
        var scenario = BuildScenario(config, data);
        var (backbone, report) = BackboneFactory.Create(config.Backbone, backboneWeights, config.Seed);
        backbone.to(device);
        backbone.UseComputeType(ComputePrecision.Parse(config.Precision, device));
        backbone.eval();
        config.Input.Validate();
        var dataSource = DataSourceFor(config, backbone, device);
        var methodContext = MethodContextFor(config, backbone, scenario.ClassCount, device);
        var learner = MethodRegistry.Create(config.Method, methodContext);
        var description = backboneWeights is null ? $"{config.Backbone} (random init)" : $"{config.Backbone} from {backboneWeights}";
        if (report is not null && report.SkippedHead) description += " (classifier head of another size skipped)";
        return new Experiment(config, scenario, backbone, learner, dataSource, device, description, methodContext);
    }

    /// <summary>The run's scenario (its dataset loaded when <paramref name="data"/> is null), in a label space of the
    /// declared class capacity when the config has one.</summary>
    public static IContinualScenario BuildScenario(RunConfig config, DatasetSplits? data = null)
    {
        data ??= LoadData(config);
        data = LimitPerClass(data, config);
        IContinualScenario scenario = ContinualScenario.Create(data, ScenarioSettings(config, data.Train.ClassNames.Count));
        if (config.ClassCapacity is not null || config.TaskCapacity is not null)
            scenario = TaskListScenario.WithCapacity(scenario, config.ClassCapacity ?? scenario.ClassCount, config.TaskCapacity ?? config.Tasks);
        return scenario;
    }

    /// <summary>The data loaders' settings (image size, normalisation, batch size, workers) of a run.</summary>
    public static DataSource DataSourceFor(RunConfig config, VisionTransformer backbone, TorchSharp.torch.Device device) =>
        new(backbone.Config.ImageSize, config.Input.Mean, config.Input.Std,
            config.BatchSize, config.Seed, device, config.Workers, config.CropScaleMin, config.Input, config.DropLast);

    /// <summary>What a run's learner is built from: heads sized for <paramref name="classCount"/> classes and pools for
    /// the task capacity (or the run's tasks).</summary>
    public static MethodContext MethodContextFor(RunConfig config, VisionTransformer backbone, int classCount, TorchSharp.torch.Device device) =>
        new(backbone, classCount, config.TaskCapacity ?? config.Tasks, device,
            config.Seed, new TrainingSettings(config.Epochs, config.LearningRate, config.BatchSize), new MethodSettings(config.MethodSettings));

    /// <summary>Builds a text run (docs/text-tasks.md) over <paramref name="tasks"/>: the language model of
    /// <see cref="TextStreams.LanguageModelFolder"/>, its tokenizer and the run's prompt format, a
    /// <see cref="TextScenario"/>, and a method that supports text.</summary>
    public static Experiment BuildText(RunConfig config, IReadOnlyList<Data.Text.TextTaskData> tasks,
        IReadOnlyDictionary<string, Data.Text.TextAnswerMetric>? metrics = null)
    {
        MethodRegistry.EnsureSupports(config.Method, InputModality.Text);
        if (ComputePrecision.IsAuto(config.Precision)) config = config with { Precision = ComputePrecision.Fp32 };   // text.dtype decides
        if (config.Precision != ComputePrecision.Fp32)
            throw new ContinualMoEException($"precision {config.Precision} applies to image backbones; a text run sets the language model's number format with text.dtype in its config (\"text\": {{\"dtype\": \"bfloat16\"}})");
        var device = ComputeDevice.Parse(config.Device);
        var folder = TextStreams.LanguageModelFolder(config);
        var tokenizer = Backbones.Language.LanguageModelTokenizer.Load(folder);
        var format = new Data.Text.TextPromptFormat(tokenizer, config.Text.PromptFormat, config.Text.MaxPromptTokens, config.Text.MaxOutputTokens);
        var scenario = TextScenario.Create(tasks, format, metrics);
        var loaded = Backbones.Language.LanguageModelFolder.Load(folder, new Backbones.Language.LanguageModelLoadOptions { DType = config.Text.ScalarType });
        var model = loaded.Model;
        try
        {
            model.to(device);
            model.eval();
            var settings = new MethodSettings(config.MethodSettings);
            var methodContext = new MethodContext(null!, scenario.ClassCount, scenario.TaskCount, device, config.Seed,
                new TrainingSettings(config.Epochs, config.LearningRate, config.BatchSize), settings)
            {
                Language = new Backbones.Language.LanguageTaskModel(model, scenario.Labels),
            };
            var learner = MethodRegistry.Create(config.Method, methodContext);
            return new Experiment(config, scenario, null!, learner, DataSource.ForText(config.BatchSize, config.Seed, device),
                device, $"{loaded.Description}, from {folder}", methodContext) { LanguageModel = model };
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    public ContinualTrainer Trainer(ITrainingObserver? observer = null) => new(Scenario, Data, Config.Seed, observer);

    /// <summary>
    /// The reference of forward transfer (docs/metrics.md): for each task, a fresh learner of the same method and
    /// settings, on the same frozen backbone, trained on that task alone (a one-task run) and tested on the task's test
    /// set over the task's classes. Costs one more training of every task (about the run's own training time).
    /// </summary>
    /// <param name="computed">References computed earlier in this process (a compare): a task whose
    /// <see cref="TaskAloneKey"/> is there is not trained again, and what is trained is added.</param>
    public double[] TaskAloneAccuracies(Action<int>? taskStarted = null, CancellationToken cancellation = default, TaskAloneReferences? computed = null)
    {
        var accuracies = new double[Scenario.TaskCount];
        for (var t = 0; t < accuracies.Length; t++)
        {
            var key = TaskAloneKey(t);
            if (computed is not null && computed.TryGet(key, out accuracies[t])) continue;
            taskStarted?.Invoke(t);
            using var learner = MethodRegistry.Create(Config.Method, MethodContext with { TaskCount = 1 });
            var results = new ContinualTrainer(Scenario.Alone(t), Data, Config.Seed).Run(learner, cancellation: cancellation);
            accuracies[t] = results.Accuracy[0, 0];
            computed?.Add(key, accuracies[t]);
        }
        return accuracies;
    }

    /// <summary>What decides task <paramref name="task"/>'s task-alone accuracy: the learner trained alone (its method and
    /// settings, or what it declares with <see cref="ITaskAloneEquivalent"/>) and the rest of the run's config (data,
    /// backbone and weights, precision, seed, scenario, training settings), all of it, so that only runs that would
    /// train the same reference share one.</summary>
    public string TaskAloneKey(int task)
    {
        var learner = Learner is ITaskAloneEquivalent equivalent
            ? equivalent.TaskAloneLearner
            : $"{Config.Method} {System.Text.Json.JsonSerializer.Serialize(Config.MethodSettings)}";
        var run = (Config with { Method = "", MethodSettings = [], ForwardTransfer = false }).ToJson();
        return $"{learner}\n{run}\ntask {task}";
    }

    /// <summary>The scenario part of a run config.</summary>
    public static ScenarioSettings ScenarioSettings(RunConfig config, int classCount) => new()
    {
        Kind = config.Scenario, Tasks = config.Tasks, FirstTaskClasses = config.FirstTaskClasses, Seed = config.Seed,
        ClassOrder = ClassOrderOf(config, classCount),
        TaskIncremental = config.TaskIncremental, Shots = config.Shots, Overlap = config.Overlap, Blurry = config.Blurry,
    };

    /// <summary>The run's class order: an order file, else the configured generator (null: the project's own, which the
    /// scenario draws from the seed).</summary>
    private static IReadOnlyList<int>? ClassOrderOf(RunConfig config, int classCount)
    {
        if (config.ClassOrderFile is not null) return ClassOrder.ReadFile(config.ClassOrderFile, classCount);
        var generator = ClassOrder.ParseGenerator(config.ClassOrder);
        return generator == ClassOrderGenerator.Project ? null : ClassOrder.Generate(generator, classCount, config.Seed);
    }

    public static DatasetSplits LoadData(RunConfig config) => DatasetCatalog.Load(config.Dataset, new DatasetOptions
    {
        Root = config.DataRoot,
        Download = config.Download,
        SplitFiles = config.SplitFiles,
        Splitting = ContinualMoE.Data.Loaders.ImageFolderLoader.ParseSplitting(config.Split),
        SplitSeed = config.SplitSeed,
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
        FrozenBackbone.Dispose();
    }
}
