using ContinualMoE.Backbones;
using ContinualMoE.LowRank;
using ContinualMoE.Training;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ContinualMoE.Methods;

/// <summary>Settings shared by the LoRA baselines (docs/methods/lora-baselines.md).</summary>
public sealed record LoraOptions
{
    /// <summary>Adapted layers (see <see cref="LowRankSites"/>); LoRA's default q and v.</summary>
    public string[] Layers { get; init; } = ["q", "v"];
    public int[]? Blocks { get; init; }
    public int Rank { get; init; } = 8;
    /// <summary>LoRA alpha; null: the rank (scaling 1).</summary>
    public double? Alpha { get; init; }
    /// <summary>EWC-LoRA: lambda of the anchoring term (default 1). O-LoRA: lambda_1 of the orthogonality loss (default
    /// the paper's 0.5). Null: the method's default.</summary>
    public double? Strength { get; init; }
    /// <summary>O-LoRA: lambda_2 of the L2 loss on the new task's LoRA (O-LoRA's default 0).</summary>
    public double L2 { get; init; }
    public int? Epochs { get; init; }
    public double? LearningRate { get; init; }
}

/// <summary>
/// What the LoRA baselines share: low-rank experts on the frozen backbone's linear layers (the <see cref="LowRankExperts"/>
/// substrate, model-agnostic), a linear head, one training phase per task (Adam, the run's rate, cosine) over the
/// experts a method trains and the head, and a single adapted pass per test image with every active expert at weight 1.
/// </summary>
public abstract class LoraLearner : LearnerBase
{
    protected LoraLearner(MethodContext context, string name, int experts) : this(context, name, context.Settings.Bind(new LoraOptions(), name), experts) { }

    private LoraLearner(MethodContext context, string name, LoraOptions options, int experts)
        : this(context, options, new LoraModel(context, name, options, experts)) { }

    private LoraLearner(MethodContext context, LoraOptions options, LoraModel model) : base(context, model)
    {
        Options = options;
        Model = model;
        if (options.Rank < 1) throw new ContinualMoEException($"{model.MethodName}: rank must be at least 1, got {options.Rank}");
    }

    protected LoraOptions Options { get; }
    protected LoraModel Model { get; }
    public LowRankExperts Bank => Model.Bank;
    public Linear Head => Model.Head;

    /// <summary>The expert task <paramref name="task"/> trains.</summary>
    protected virtual int TrainedExpert(TaskContext task) => 0;
    protected virtual double DefaultStrength => 1.0;
    protected double Strength => Options.Strength ?? DefaultStrength;
    protected virtual Tensor? AuxiliaryLoss(TaskContext task) => null;
    protected virtual Data.ILabelledDataset? PhaseData(TaskContext task) => null;
    protected virtual bool[]? PhaseLogitMask(TaskContext task) => null;

    public override void BeginTask(TaskContext task) => Bank.Activate(TrainedExpert(task));

    public override IReadOnlyList<TrainingPhase> TrainingPhases(TaskContext task) =>
    [
        new TrainingPhase
        {
            Name = Name,
            Epochs = Options.Epochs ?? Context.Training.Epochs,
            Parameters = [new ParameterGroup("lora", Bank.TrainableParameters([TrainedExpert(task)])), new ParameterGroup("head", TrainableParameters(Head))],
            Optimizer = new OptimizerSettings { Kind = OptimizerKind.Adam, LearningRate = Options.LearningRate ?? Context.Training.LearningRate, Schedule = ScheduleKind.Cosine },
            Data = PhaseData(task),
            LogitMask = PhaseLogitMask(task),
            Step = batch => new StepOutput(Head.forward(AdaptedFeatures(batch.Images)), AuxiliaryLoss(task)),
        },
    ];

    protected Tensor AdaptedFeatures(Tensor images)
    {
        using var output = Backbone.ForwardFeatures(images, new VitForwardOptions { Adapters = Bank });
        return output.Cls.clone();
    }

    public override Prediction Predict(Tensor images, EvaluationContext context) => new(Head.forward(AdaptedFeatures(images)));

    public override void LoadState(IReadOnlyDictionary<string, Tensor> state)
    {
        base.LoadState(state);
        Bank.SyncFromState();
    }

    /// <summary>LoRA parameters in use (inactive capacity not counted) and the head; anchoring buffers are state only.</summary>
    public override MethodCost Cost(int tasksTrained)
    {
        var adapters = Bank.ActiveParameterCount();
        var bytes = Model.state_dict().Values.Sum(t => t.numel() * t.element_size());
        return new MethodCost(adapters + Head.parameters().Sum(p => p.numel()), ParametersAddedPerTask, bytes, 1);
    }

    protected sealed class LoraModel : nn.Module
    {
        public readonly LowRankExperts Bank;
        public readonly Linear Head;
        public readonly string MethodName;

        public LoraModel(MethodContext context, string name, LoraOptions options, int experts) : base(nameof(LoraModel))
        {
            MethodName = name;
            ITransformerBackbone backbone = context.Backbone;
            var sites = LowRankSites.Select(backbone, options.Layers, options.Blocks, name);
            torch.random.manual_seed(context.Seed);
            Bank = LowRankExperts.Uniform(sites, experts, options.Rank, options.Alpha ?? options.Rank);
            Head = nn.Linear(backbone.Width, context.ClassCount);
            register_module("bank", Bank);
            register_module("head", Head);
        }

        /// <summary>Registers a method's extra state (e.g. EWC's anchor) so it is saved with the rest.</summary>
        public void Add(string name, nn.Module module) => register_module(name, module);
    }
}
