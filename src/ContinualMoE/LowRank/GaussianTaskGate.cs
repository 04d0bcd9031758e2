using ContinualMoE.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace ContinualMoE.LowRank;

/// <summary>
/// A task gate that needs no stored data and no training: per class a diagonal Gaussian of the frozen backbone's pooled
/// feature (the statistics the project already keeps for classifier alignment), and per task the log-likelihood of its
/// classes' mixture, log sum_{c in task} N(x; mu_c, sigma_c^2) (equal class weights). A new task adds its classes'
/// statistics and so one output; the outputs of earlier tasks do not change (tested), which a trained gate cannot promise.
/// Variances are shrunk towards their mean over dimensions, (1 - s) sigma^2 + s mean(sigma^2), against the few-sample
/// noise of small classes.
/// </summary>
public sealed class GaussianTaskGate : nn.Module
{
    private readonly GaussianClassStatistics statistics;
    [TorchSharp.Utils.ComponentName(Name = "task_of_class")]
    private readonly Tensor taskOfClass;   // [C] int64, -1 unseen

    public int TaskCount { get; }
    public double Shrinkage { get; }

    public GaussianTaskGate(int classes, int dim, int tasks, double shrinkage = 0.1) : base(nameof(GaussianTaskGate))
    {
        TaskCount = tasks;
        Shrinkage = shrinkage;
        statistics = new GaussianClassStatistics(classes, dim, CovarianceKind.Diagonal);
        taskOfClass = full(classes, -1L, dtype: int64);
        register_module("statistics", statistics);
        register_buffer("task_of_class", taskOfClass);
    }

    public Tensor TaskOfClass => taskOfClass;

    /// <summary>Adds class <paramref name="label"/> of task <paramref name="task"/> from its pooled features [n, D].</summary>
    public void AddClass(int label, int task, Tensor features)
    {
        statistics.Set(label, features);
        using var noGrad = no_grad();
        taskOfClass[label].fill_(task);
    }

    /// <summary>Task logits [B, TaskCount]: each task's log-likelihood; tasks without classes get -inf.</summary>
    public Tensor Logits(Tensor features)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var known = statistics.Known.nonzero().squeeze(1);
        var batch = features.shape[0];
        var result = full(batch, TaskCount, Scalars.NegativeInfinity, device: features.device);
        if (known.numel() == 0) return result.MoveToOuterDisposeScope();
        var means = statistics.Means.index_select(0, known);                       // [K, D]
        var variances = statistics.Covariances.index_select(0, known);             // [K, D]
        variances = variances.mul(Scalars.Of(1 - Shrinkage)).Plus(variances.mean([1], keepdim: true).mul(Scalars.Of(Shrinkage)));
        var x = features.to(float32).unsqueeze(1);                                 // [B, 1, D]
        var logLikelihood = ((x - means).square() / variances).Plus(variances.log()).sum(2).mul(Scalars.Of(-0.5));  // [B, K]
        var tasks = taskOfClass.index_select(0, known);
        for (var t = 0; t < TaskCount; t++)
        {
            var members = tasks.eq(Scalars.Of(t)).nonzero().squeeze(1);
            if (members.numel() == 0) continue;
            result[.., t] = logLikelihood.index_select(1, members).logsumexp(1);
        }
        return result.MoveToOuterDisposeScope();
    }
}
