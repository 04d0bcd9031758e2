using System.Text.Json;
using ContinualMoE.Backbones;
using ContinualMoE.LowRank;
using static TorchSharp.torch;

namespace ContinualMoE.Tests.LowRank;

/// <summary>
/// Fixtures/inflora_official.json is written by tools/make_inflora_fixture.py from the official InfLoRA code
/// (liangyanshuo/InfLoRA): the input moments of Attention_LoRA.forward, the memory of InfLoRA.update_DualGPM over four
/// tasks (first task, a 'remove' update, the switch to 'retain', a 'retain' update), and the reduction matrix designed
/// before each task (restated from InfLoRA._train, which has it inline). Bases and reduction matrices are compared as
/// projectors, which do not depend on the signs an SVD picks.
/// </summary>
public class InfLoraParityTests
{
    private static readonly Lazy<JsonElement> Fixture = new(() =>
        JsonDocument.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "Fixtures", "inflora_official.json"))).RootElement);

    private static Tensor Matrix(JsonElement rows) =>
        tensor(rows.EnumerateArray().SelectMany(r => r.EnumerateArray().Select(v => v.GetDouble())).ToArray(), dtype: float64)
            .reshape(rows.GetArrayLength(), -1);

    private static Tensor Inputs(JsonElement batch)
    {
        var values = batch.EnumerateArray().SelectMany(s => s.EnumerateArray().SelectMany(t => t.EnumerateArray().Select(v => v.GetSingle()))).ToArray();
        return tensor(values).reshape(batch.GetArrayLength(), batch[0].GetArrayLength(), -1);
    }

    private static void AssertClose(Tensor expected, Tensor actual, double tolerance, string what)
    {
        var difference = (expected - actual.to(float64)).abs().max().item<double>();
        Assert.True(difference < tolerance, $"{what}: largest difference {difference:G3}");
    }

    [Fact]
    public void InputMomentsMemoryAndReductionMatchTheOfficialCode()
    {
        var fixture = Fixture.Value;
        var dim = fixture.GetProperty("dim").GetInt32();
        var rank = fixture.GetProperty("rank").GetInt32();
        var site = new LinearLayerShape(new LinearSite(0, LinearLayers.Key), dim, dim);
        using var bank = LowRankExperts.Uniform([site], 1, rank, rank);
        using var memory = new InputSubspaceMemory([dim]);
        var t = 0;
        foreach (var task in fixture.GetProperty("tasks").EnumerateArray())
        {
            // The moment E[x x^T] over every token, as the bank records it at a site's input.
            bank.StartInputMoments([0]);
            foreach (var batch in task.GetProperty("inputs").EnumerateArray())
                using (var x = Inputs(batch)) bank.Delta(site.Site, x)?.Dispose();
            using var moment = bank.StopInputMoments()[0]!;
            AssertClose(Matrix(task.GetProperty("moment")), moment, 1e-5, $"task {t} moment");

            // The reduction matrix designed from the memory of the earlier tasks.
            using var reduction = memory.DesignReduction(0, moment, rank);
            AssertClose(Matrix(task.GetProperty("design")), reduction.t().matmul(reduction).mul(3.0), 1e-4, $"task {t} reduction");

            // The memory after the task.
            memory.Update([moment], task.GetProperty("threshold").GetDouble());
            var after = task.GetProperty("after");
            Assert.Equal(after.GetProperty("kind").GetString() == "retain", memory.Retains(0));
            Assert.Equal(after.GetProperty("columns").GetInt32(), memory.Columns(0));
            using var basis = memory.Basis(0);
            AssertClose(Matrix(after.GetProperty("projector")), basis.matmul(basis.t()), 1e-4, $"task {t} memory");
            t++;
        }
        Assert.Equal(4, t);
        Assert.True(memory.Retains(0));   // the fixture reaches the 'retain' form
    }
}
