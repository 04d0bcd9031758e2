using System.Text.Json;
using ContinualMoE.Backbones;
using ContinualMoE.Methods;
using ContinualMoE.Tests.Backbones;
using ContinualMoE.Training;
using static TorchSharp.torch;

namespace ContinualMoE.Tests.Methods;

/// <summary>Every prompt method picks its blocks through one filter (MethodContextExtensions.PromptBlocks): blocks the
/// backbone lacks are dropped, and none left is a one-line error naming the method and the setting, never a method
/// with zero prompt blocks that silently trains only its head.</summary>
public class PromptBlockTests
{
    private static MethodContext Context(string key, string json) =>
        new(new VisionTransformer(VitTestModels.Tiny, seed: 1), 10, 3, CPU, 3, new TrainingSettings(1, 0.01, 8),
            new MethodSettings(new Dictionary<string, JsonElement> { [key] = JsonDocument.Parse(json).RootElement.Clone() }));

    [Theory]
    [InlineData("coda-prompt", "blocks")]
    [InlineData("deep-l2p", "blocks")]
    [InlineData("smope", "blocks")]
    [InlineData("samoe", "blocks")]
    [InlineData("hide-prompt", "blocks")]
    [InlineData("shared-prompt", "blocks")]
    [InlineData("dualprompt", "g_blocks")]
    [InlineData("dualprompt", "e_blocks")]
    [InlineData("ovor", "g_blocks")]
    [InlineData("ovor", "e_blocks")]
    public void BlocksTheBackboneLacksAreAnErrorNamingMethodAndSetting(string method, string setting)
    {
        var error = Assert.Throws<ContinualMoEException>(() => MethodRegistry.Create(method, Context(setting, "[7, 8]")).Dispose());
        Assert.Contains(method, error.Message);
        Assert.Contains(setting, error.Message);
        Assert.Contains("3-block", error.Message);
        Assert.DoesNotContain('\n', error.Message);
    }

    [Theory]
    [InlineData("coda-prompt", "blocks")]
    [InlineData("smope", "blocks")]
    public void AnEmptyBlockListIsAnErrorWhereTheMethodNeedsBlocks(string method, string setting) =>
        Assert.Throws<ContinualMoEException>(() => MethodRegistry.Create(method, Context(setting, "[]")).Dispose());

    [Theory]
    [InlineData("dualprompt", "g_blocks")]
    [InlineData("ovor", "g_blocks")]
    public void AnExplicitlyEmptyListIsAnAblationWhereThePromptIsOptional(string method, string setting)
    {
        using var learner = MethodRegistry.Create(method, Context(setting, "[]"));
        Assert.Contains(learner.State(), kv => kv.Value.shape[0] == 0);   // the G-prompt holds no block
    }

    [Fact]
    public void BlocksOutsideTheBackboneAreDroppedAndTheRestSorted()
    {
        var context = Context("blocks", "[]");
        Assert.Equal([0, 2], context.PromptBlocks([2, 9, 0, 2, -1], "test"));
    }
}
