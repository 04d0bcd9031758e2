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
    /// <summary>InfLoRA: the energy threshold of its input-space memory for the first task (official lamb, 0.95); it
    /// rises linearly towards <see cref="ThresholdEnd"/> (official lame, 1.0): lamb + (lame - lamb) t / T.</summary>
    public double Threshold { get; init; } = 0.95;
    public double ThresholdEnd { get; init; } = 1.0;
    /// <summary>MoCL: the scale of the softmax over query-key cosines (official softmax_match_scale, 8).</summary>
    public double MatchScale { get; init; } = 8;
    /// <summary>MoCL: the weight of the matching loss 1 - cos(query, own key) (official matching_loss_coeff, 1; 0 off).</summary>
    public double MatchingLoss { get; init; } = 1;
    public int? Epochs { get; init; }
    public double? LearningRate { get; init; }
}

/// <summary>
/// What the LoRA baselines share: low-rank experts on the frozen backbone's linear layers (the <see cref="LowRankExperts"/>
/// substrate, model-agnostic), the backbone-neutral <see cref="AdaptedReadout"/> (a linear head on a ViT; label scoring
/// and the causal-LM loss on a language model), one training phase per task (Adam, the run's rate, cosine) over the
/// experts a method trains and the head if any, and a single adapted pass per test input with every active expert at
/// weight 1. Runs on images and text alike: a subclass sees batches and the readout only.
/// </summary>
public abstract class LoraLearner : LearnerBase
{
    protected LoraLearner(MethodContext context, string name, int experts) : this(context, name, experts, new LoraOptions()) { }

    /// <param name="defaults">The method's own defaults (e.g. InfLoRA's k and v at rank 10), overridden by the settings.</param>
    protected LoraLearner(MethodContext context, string name, int experts, LoraOptions defaults)
        : this(context, name, context.Settings.Bind(defaults, name), experts) { }

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
    /// <summary>The linear head over the classes (null on a language model, whose own output scores the labels).</summary>
    public Linear? Head => Model.Readout.Head;
    public AdaptedReadout Readout => Model.Readout;

    /// <summary>The expert task <paramref name="task"/> trains.</summary>
    protected virtual int TrainedExpert(TaskContext task) => 0;
    protected virtual double DefaultStrength => 1.0;
    protected double Strength => Options.Strength ?? DefaultStrength;
    protected virtual Tensor? AuxiliaryLoss(TaskContext task) => null;
    protected virtual Data.ILabelledDataset? PhaseData(TaskContext task) => null;
    protected virtual bool[]? PhaseLogitMask(TaskContext task) => null;
    /// <summary>The LoRA parameters task <paramref name="task"/> trains (default: all of its expert's).</summary>
    protected virtual IReadOnlyList<Parameter> TrainedLoraParameters(TaskContext task) => Bank.TrainableParameters([TrainedExpert(task)]);
    /// <summary>Further parameters a method trains beside the LoRA and the head (e.g. a router).</summary>
    protected virtual IReadOnlyList<ParameterGroup> ExtraParameterGroups(TaskContext task) => [];
    /// <summary>One training step: logits over the classes (the trainer adds the masked cross-entropy) and the method's
    /// own loss terms.</summary>
    protected virtual StepOutput TrainStep(Data.Batch batch, TaskContext task) => Readout.TrainingOutput(batch, Bank, AuxiliaryLoss(task));

    public override void BeginTask(TaskContext task) => Bank.Activate(TrainedExpert(task));

    public override IReadOnlyList<TrainingPhase> TrainingPhases(TaskContext task) =>
    [
        new TrainingPhase
        {
            Name = Name,
            Epochs = Options.Epochs ?? Context.Training.Epochs,
            Parameters = [new ParameterGroup("lora", TrainedLoraParameters(task)), .. HeadGroup, .. ExtraParameterGroups(task)],
            Optimizer = new OptimizerSettings { Kind = OptimizerKind.Adam, LearningRate = Options.LearningRate ?? Context.Training.LearningRate, Schedule = ScheduleKind.Cosine },
            Data = PhaseData(task),
            LogitMask = PhaseLogitMask(task),
            Step = batch => TrainStep(batch, task),
        },
    ];

    /// <summary>The one-task run of plain LoRA with these options (<see cref="ITaskAloneEquivalent"/>): what a first task
    /// trains in sequential LoRA, EWC-LoRA (no anchor yet) and O-LoRA without its L2 term (no earlier LoRA to be
    /// orthogonal to). The anchoring / orthogonality strength and the L2 weight do not enter it.</summary>
    protected string PlainLoraAlone => "plain LoRA " + System.Text.Json.JsonSerializer.Serialize(Options with { Strength = null, L2 = 0 });

    /// <summary>The head's parameter group, when the readout has a head.</summary>
    protected IReadOnlyList<ParameterGroup> HeadGroup => Head is null ? [] : [new ParameterGroup("head", Readout.HeadParameters)];

    public override Prediction Predict(Tensor images, EvaluationContext context) => Predict(Data.Batch.OfInputs(images), context);

    public override Prediction Predict(Data.Batch batch, EvaluationContext context) => Readout.Predict(batch, Bank, context);

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
        return new MethodCost(adapters + (Head?.parameters().Sum(p => p.numel()) ?? 0), ParametersAddedPerTask, bytes, 1);
    }

    protected sealed class LoraModel : nn.Module
    {
        public readonly LowRankExperts Bank;
        public readonly AdaptedReadout Readout;
        public readonly string MethodName;

        public LoraModel(MethodContext context, string name, LoraOptions options, int experts) : base(nameof(LoraModel))
        {
            MethodName = name;
            var sites = LowRankSites.Select(context.AdaptableBackbone, options.Layers, options.Blocks, name);
            torch.random.manual_seed(context.Seed);
            Bank = LowRankExperts.Uniform(sites, experts, options.Rank, options.Alpha ?? options.Rank);
            Readout = context.NewReadout();
            register_module("bank", Bank);
            if (Readout.Head is { } head) register_module("head", head);
        }

        /// <summary>Registers a method's extra state (e.g. EWC's anchor) so it is saved with the rest.</summary>
        public void Add(string name, nn.Module module) => register_module(name, module);
    }
}
