using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ContinualMoE.Training;

/// <summary>
/// HiDe-Prompt's task-identity inference (TII) network on frozen, un-prompted backbone features: a residual MLP
/// LayerNorm(x + W2 GELU(W1 x)) with hidden width <c>hiddenMultiplier</c> x D, then a linear head over all classes.
/// The predicted class's task is the predicted task. Per-class Gaussian statistics (mean, full covariance + 1e-4 I) of
/// the backbone features are kept for its re-alignment from the second task on. The official network is
/// <c>MlpMapping(dim, hidden=[2])</c> + <c>head</c> of vits/*_vision_transformer.py, run with <c>fc_only=True</c>
/// (LayerNorm eps 1e-5, exact GELU, no dropout); checked against it by a fixture test.
/// </summary>
public sealed class TaskIdentityInference : nn.Module
{
    private readonly Linear fc1;
    private readonly Linear fc2;
    private readonly LayerNorm norm;
    private readonly Linear head;
    [TorchSharp.Utils.ComponentName(Name = "task_of_class")]
    private readonly Tensor taskOfClass; // [C] int64, -1 for classes not seen yet

    public GaussianClassStatistics Statistics { get; }

    public TaskIdentityInference(int dim, int classes, int hiddenMultiplier = 2) : base(nameof(TaskIdentityInference))
    {
        fc1 = nn.Linear(dim, dim * hiddenMultiplier);
        fc2 = nn.Linear(dim * hiddenMultiplier, dim);
        norm = nn.LayerNorm(dim);
        head = nn.Linear(dim, classes);
        taskOfClass = full(classes, -1L, dtype: int64);
        Statistics = new GaussianClassStatistics(classes, dim, CovarianceKind.Full);
        register_module("fc1", fc1);
        register_module("fc2", fc2);
        register_module("norm", norm);
        register_module("head", head);
        register_buffer("task_of_class", taskOfClass);
        register_module("statistics", Statistics);
    }

    /// <summary>timm's init_weights_vit_timm for a linear layer: truncated normal (std 0.02, cut at +-2) weights, zero bias.</summary>
    public static void TimmInit(Linear layer)
    {
        using var noGrad = no_grad();
        TruncatedNormal.Fill_(layer.weight, std: 0.02);
        if (layer.bias is { } bias) bias.zero_();
    }

    /// <summary>Re-initialises the MLP and head as the official TII model has them (the pretrained checkpoint does not
    /// cover them, so they keep timm's init); the LayerNorm keeps ones and zeros either way.</summary>
    public void UseTimmInit()
    {
        TimmInit(fc1);
        TimmInit(fc2);
        TimmInit(head);
    }

    /// <summary>The MLP and head parameters (what TII training and its alignment change).</summary>
    public IReadOnlyList<Parameter> NetworkParameters =>
        [.. fc1.parameters(), .. fc2.parameters(), .. norm.parameters(), .. head.parameters()];

    public Tensor TaskOfClass => taskOfClass;

    public void AssignTask(IEnumerable<int> classes, int task)
    {
        using var noGrad = no_grad();
        using var value = task.ToScalar();
        foreach (var c in classes) taskOfClass[c].fill_(value);
    }

    /// <summary>Backbone features [B, D] to class logits [B, C].</summary>
    public Tensor Logits(Tensor features)
    {
        using var scope = NewDisposeScope();
        var hidden = fc2.forward(nn.functional.gelu(fc1.forward(features)));
        return head.forward(norm.forward(features.Plus(hidden))).MoveToOuterDisposeScope();
    }

    /// <summary>Predicted class (argmax over <paramref name="seenClasses"/>) and its task, both int64 [B].</summary>
    public (Tensor Classes, Tensor Tasks) Infer(Tensor features, bool[] seenClasses)
    {
        using var scope = NewDisposeScope();
        var classes = Losses.MaskLogits(Logits(features), seenClasses).argmax(-1);
        var tasks = taskOfClass.index_select(0, classes);
        return (classes.MoveToOuterDisposeScope(), tasks.MoveToOuterDisposeScope());
    }
}
